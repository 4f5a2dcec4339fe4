//! Files the library owns: where indexes live, one atomic-write helper for every file the
//! program writes (index, demo table, imported weights), and the lock an index writer holds.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::engine::error::{Error, Result};

/// Where an index for `db_dir` lives by default: the user's cache folder, never the database.
/// The folder is identified by its canonical path, so `../db` and `/abs/db` share one index.
pub fn default_index_path(db_dir: &Path) -> PathBuf {
    let abs = crate::engine::library::database::absolute(db_dir);
    let name = abs
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "root".into());
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash =
        crate::engine::model::vgg::hex(&sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes()))
            [..12]
            .to_string();
    cache_dir()
        .join("indexes")
        .join(format!("{name}-{hash}.db"))
}

/// The program's cache folder.
pub fn cache_dir() -> PathBuf {
    directories::ProjectDirs::from("org", "morphosearch", "morphosearch")
        .map(|d| d.cache_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("morphosearch"))
}

/// The temporary file beside `path` that this process writes before renaming it over `path`.
fn temp_for(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".tmp{}", std::process::id()));
    path.with_file_name(name)
}

/// Whether a process with this id is running (Linux: /proc; elsewhere assumed running).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Removes temporary files beside `path` left by processes that no longer run (a kill during
/// a save leaves one).
pub fn remove_stale_temps(path: &Path) {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let prefix = format!("{}.tmp", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        if let Some(pid) = file
            .strip_prefix(&prefix)
            .and_then(|p| p.parse::<u32>().ok())
        {
            if pid != std::process::id() && !process_alive(pid) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: a temporary file beside it (synced), then a rename.
/// Readers see the old file or the new one, never a part; a failure removes the temporary.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    remove_stale_temps(path);
    let tmp = temp_for(path);
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// An index being written: `<index>.lock` holds the writer's process id. A second writer gets
/// a clear message; a lock left by a killed process is taken over. Released on drop.
#[derive(Debug)]
pub struct IndexLock {
    path: PathBuf,
}

impl IndexLock {
    /// Takes the lock of the index at `index_path` (creating its folder), or says who holds it.
    /// Also proves early that the index location is writable.
    pub fn acquire(index_path: &Path) -> Result<Self> {
        let mut name = index_path.file_name().unwrap_or_default().to_os_string();
        name.push(".lock");
        let path = index_path.with_file_name(name);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                Error::Index(format!(
                    "cannot create the index folder {}: {e}",
                    dir.display()
                ))
            })?;
        }
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    let _ = writeln!(f, "{}", std::process::id());
                    return Ok(Self { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if process_alive(pid) => {
                            return Err(Error::Index(format!(
                                "index {} is being written by another indexing run (process \
                                 {pid}); wait for it to finish, or use another --index",
                                index_path.display()
                            )))
                        }
                        // Left by a process that no longer runs (or unreadable): take it over.
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(e) => {
                    return Err(Error::Index(format!(
                        "cannot write the index at {}: {e}",
                        index_path.display()
                    )))
                }
            }
        }
        Err(Error::Index(format!(
            "cannot take the lock {} of the index",
            path.display()
        )))
    }
}

impl Drop for IndexLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_and_a_dead_writers_lock_taken_over() {
        let tmp = tempfile::tempdir().expect("tmp");
        let index = tmp.path().join("a.msidx");
        let lock = IndexLock::acquire(&index).expect("first");
        let second = IndexLock::acquire(&index).expect_err("second");
        assert!(second.to_string().contains("being written"), "{second}");
        drop(lock);
        // A lock file of a process that is not running.
        std::fs::write(tmp.path().join("a.msidx.lock"), "4000000000\n").expect("write");
        let taken = IndexLock::acquire(&index).expect("taken over");
        drop(taken);
        assert!(!tmp.path().join("a.msidx.lock").exists());
    }

    #[test]
    fn atomic_writes_replace_whole_files_and_clean_stale_temporaries() {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("x.bin");
        std::fs::write(tmp.path().join("x.bin.tmp4000000000"), b"left by a kill").expect("w");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"two");
        let names: Vec<String> = std::fs::read_dir(tmp.path())
            .expect("dir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        assert_eq!(names, vec!["x.bin".to_string()], "{names:?}");
    }

    #[test]
    fn an_unwritable_index_location_is_found_at_once() {
        let tmp = tempfile::tempdir().expect("tmp");
        let file = tmp.path().join("plain-file");
        std::fs::write(&file, b"x").expect("w");
        // A folder cannot be created inside a file.
        let e = IndexLock::acquire(&file.join("i.msidx")).expect_err("unwritable");
        assert!(
            e.to_string().contains("cannot create the index folder"),
            "{e}"
        );
    }
}
