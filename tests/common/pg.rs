//! A throwaway PostgreSQL cluster for tests: `initdb` in a temporary folder (as the
//! `postgres` user when the tests run as root), a unix socket only, stopped and removed on
//! drop. Tests that need one skip with a printed reason where PostgreSQL is not installed.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Cluster {
    dir: PathBuf,
    port: u16,
    as_postgres: bool,
}

fn bin_dir() -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").is_file() && b.join("pg_ctl").is_file())
        .collect();
    found.sort();
    found.pop()
}

impl Cluster {
    /// Starts a cluster, or prints why `test` is skipped and gives None.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            println!(
                "SKIPPED {test}: PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb; \
                 .ci/run installs Debian's postgresql package)"
            );
            return None;
        };
        let as_postgres = running_as_root();
        let dir = std::env::temp_dir().join(format!(
            "morphosearch-pg-{}-{}",
            std::process::id(),
            test.len() + test.bytes().map(usize::from).sum::<usize>()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sock")).expect("cluster folder");
        let port = 20000 + (std::process::id() % 20000) as u16;
        let cluster = Self {
            dir: dir.clone(),
            port,
            as_postgres,
        };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown the cluster folder to postgres");
        }
        cluster.run(
            &bin.join("initdb"),
            &[
                "-D",
                &cluster.data(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        let options = format!(
            "-k {} -p {port} -c listen_addresses='' -c fsync=off",
            dir.join("sock").display()
        );
        cluster.run(
            &bin.join("pg_ctl"),
            &[
                "-D",
                &cluster.data(),
                "-o",
                &options,
                "-w",
                "-l",
                &cluster.log(),
                "start",
            ],
        );
        Some(cluster)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    fn log(&self) -> String {
        self.dir.join("log").display().to_string()
    }

    fn run(&self, program: &Path, args: &[&str]) {
        let out = if self.as_postgres {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(program)
                .args(args)
                .output()
        } else {
            Command::new(program).args(args).output()
        }
        .expect("run a PostgreSQL program");
        assert!(
            out.status.success(),
            "{} failed: {}{}",
            program.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The URL of database `name` on this cluster.
    pub fn url(&self, name: &str) -> String {
        format!(
            "postgresql://postgres@localhost/{name}?host={}&port={}",
            self.dir.join("sock").display(),
            self.port
        )
    }

    /// Creates an empty database and gives its URL.
    pub fn create_db(&self, name: &str) -> String {
        let mut client = postgres::Client::connect(&self.url("postgres"), postgres::NoTls)
            .expect("connect to the test cluster");
        // A test's own constant name, not user input.
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create database");
        self.url(name)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Some(bin) = bin_dir() {
            let pg_ctl = bin.join("pg_ctl");
            let args = ["-D", &self.data(), "-m", "immediate", "stop"];
            let _ = if self.as_postgres {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(&pg_ctl)
                    .args(args)
                    .output()
            } else {
                Command::new(&pg_ctl).args(args).output()
            };
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Whether the tests run as root (initdb refuses root: the cluster then runs as `postgres`).
fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}
