//! Bad input ends in a clear message and a usable state: folders with broken images, broken
//! tables, damaged or foreign index files, and an interrupted indexing run.

mod common;

use common::cli::{answers, assert_same_answers, bin, index_command, signal, wait_for};

use std::path::Path;
use std::sync::atomic::AtomicBool;

use image::{ImageBuffer, Luma};
use morphosearch::engine::descriptor::features::FeatureConfig;
use morphosearch::engine::library::index::{Index, Space, MAX_PCA_DIMS};
use morphosearch::engine::library::indexer::{build_index, IndexJob, IndexReport};
use morphosearch::engine::sketch::SketchConfig;
use morphosearch::engine::{Engine, Error};

fn job(db: &Path, index: &Path) -> IndexJob {
    IndexJob {
        pixel_size_column: None,
        query_sizes: morphosearch::engine::library::index::DEFAULT_QUERY_SIZES.to_vec(),
        db_dir: db.to_path_buf(),
        table: None,
        image_column: None,
        index_path: index.to_path_buf(),
        features: FeatureConfig::default(),
        pca_dims: MAX_PCA_DIMS,
        whiten: false,
        sketch: SketchConfig::default(),
    }
}

fn index_with(engine: &Engine, job: &IndexJob) -> Result<(Index, IndexReport), Error> {
    build_index(&engine.vgg, job, &mut |_, _| {}, &AtomicBool::new(false))
}

#[test]
fn empty_folder_gives_an_empty_usable_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    std::fs::create_dir(&db).expect("mkdir");
    let (index, report) = index_with(common::engine(), &job(&db, &tmp.path().join("i.msidx")))
        .expect("empty is fine");
    assert!(index.is_empty());
    assert_eq!(report.images, 0);
    assert!(index.search(&[0.0; 512], Space::Image, 5).is_empty());
    let missing = index_with(
        common::engine(),
        &job(&tmp.path().join("nope"), &tmp.path().join("j.msidx")),
    );
    assert!(missing
        .expect_err("no folder")
        .to_string()
        .contains("does not exist"));
}

#[test]
fn unreadable_images_are_reported_and_the_rest_indexed() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 3);
    std::fs::write(
        db.join("corrupt.png"),
        b"\x89PNG\r\n\x1a\nthis is not really a png",
    )
    .expect("w");
    std::fs::write(db.join("empty.jpg"), b"").expect("w");
    image::RgbImage::from_pixel(1, 1, image::Rgb([200, 10, 10]))
        .save(db.join("one_pixel.png"))
        .expect("w");
    let deep: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_fn(300, 200, |x, y| Luma([(x * 97 + y * 31) as u16 % 4096]));
    deep.save(db.join("sixteen_bit.tif")).expect("16-bit tiff");
    let huge = image::GrayImage::from_fn(10_000, 10_000, |x, y| {
        Luma([if (x / 500 + y / 500) % 2 == 0 {
            40
        } else {
            200
        }])
    });
    huge.save(db.join("huge.png")).expect("10000x10000 png");
    drop(huge);
    let index_path = tmp.path().join("i.msidx");
    let (index, report) = index_with(common::engine(), &job(&db, &index_path)).expect("index");
    let paths: Vec<&str> = index.entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(index.len(), 6, "{paths:?}");
    for p in ["one_pixel.png", "sixteen_bit.tif", "huge.png"] {
        assert!(paths.contains(&p), "{p} indexed: {paths:?}");
    }
    assert_eq!(report.problems.len(), 2, "{:?}", report.problems);
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.contains("empty.jpg") && p.contains("0 bytes")),
        "{:?}",
        report.problems
    );
    assert!(
        report.problems.iter().any(|p| p.contains("corrupt.png")),
        "{:?}",
        report.problems
    );
    let huge_entry = index
        .entries
        .iter()
        .find(|e| e.path == "huge.png")
        .expect("huge");
    assert_eq!((huge_entry.width, huge_entry.height), (10_000, 10_000));
    // The database folder is never written to.
    let names: Vec<String> = std::fs::read_dir(&db)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(names.len(), 8, "{names:?}");
}

#[test]
fn broken_tables_give_messages_not_panics() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 2);
    let no_column = tmp.path().join("no_column.csv");
    std::fs::write(&no_column, "sample,temperature\nA,20\nB,30\n").expect("w");
    let mut j = job(&db, &tmp.path().join("i.msidx"));
    j.table = Some(no_column);
    let err = index_with(common::engine(), &j).expect_err("no image column");
    assert!(err.to_string().contains("--image-column"), "{err}");

    let messy = tmp.path().join("messy.csv");
    std::fs::write(
        &messy,
        b"file,T,polymer\nimg0.png,20\nimg1.png,30,PEG\xe9,extra\nghost.png,1,x\n",
    )
    .expect("w");
    j.table = Some(messy);
    let (index, report) = index_with(common::engine(), &j).expect("messy table is usable");
    assert_eq!(index.columns, vec!["T", "polymer"]);
    assert_eq!(
        index.param(1, "polymer").expect("value").text,
        "PEG\u{fffd}"
    );
    assert!(report
        .table_warnings
        .iter()
        .any(|w| w.contains("not UTF-8")));
    assert!(report.table_warnings.iter().any(|w| w.contains("cells")));
    assert_eq!(report.rows_without_image.len(), 1);
}

#[test]
fn damaged_or_foreign_index_is_rebuilt_with_a_message() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 3);
    let index_path = tmp.path().join("i.msidx");
    let j = job(&db, &index_path);
    index_with(common::engine(), &j).expect("first");
    let bytes = std::fs::read(&index_path).expect("read");
    std::fs::write(&index_path, &bytes[..bytes.len() / 2]).expect("truncate");
    let err = Index::load(&index_path).expect_err("truncated");
    assert!(err.to_string().contains("i.msidx"), "{err}");
    let (index, report) = index_with(common::engine(), &j).expect("rebuilt");
    assert_eq!(index.len(), 3);
    assert_eq!(report.described, 3);
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("kept as") && n.contains("rebuilt")),
        "{:?}",
        report.notes
    );
    assert!(
        tmp.path().join("i.damaged").is_file(),
        "the damaged file is kept"
    );
    // Another program's SQLite database is refused, never written.
    let foreign = tmp.path().join("other.db");
    let status = std::process::Command::new("python3")
        .arg("-c")
        .arg("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('CREATE TABLE t (x)'); c.commit()")
        .arg(&foreign)
        .status();
    if status.is_ok_and(|s| s.success()) {
        let before = std::fs::read(&foreign).expect("read");
        let e = index_with(common::engine(), &job(&db, &foreign)).expect_err("foreign");
        assert!(e.to_string().contains("database of something else"), "{e}");
        let after = std::fs::read(&foreign).expect("read");
        assert!(after == before, "the other program's database was written");
    }

    // Another weights file: same network, one bias nudged.
    let other = tmp.path().join("other.safetensors");
    let shipped = morphosearch::engine::model::vgg::find_default_weights().expect("shipped");
    let mut tensors =
        candle_core::safetensors::load(&shipped, &candle_core::Device::Cpu).expect("load");
    let b = tensors["features.28.bias"]
        .affine(1.0, 0.01)
        .expect("nudge");
    tensors.insert("features.28.bias".into(), b);
    candle_core::safetensors::save(&tensors, &other).expect("save");
    let out = bin()
        .args(["search", "--index"])
        .arg(&index_path)
        .arg("--weights")
        .arg(&other)
        .arg(db.join("img0.png"))
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr.contains("other VGG16 weights"), "{stderr}");
    let engine_b = Engine::load(Some(&other), "cpu").expect("other weights");
    let (_, report) = index_with(&engine_b, &j).expect("rebuilt for new weights");
    assert!(
        report.notes.iter().any(|n| n.contains("other weights")),
        "{:?}",
        report.notes
    );
    assert_eq!(report.described, 3);
}

#[test]
fn reindexing_is_incremental() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 4);
    let j = job(&db, &tmp.path().join("i.msidx"));
    index_with(common::engine(), &j).expect("first");
    std::fs::remove_file(db.join("img3.png")).expect("rm");
    common::particles(80, 99, false)
        .save(db.join("new.png"))
        .expect("new");
    let (index, report) = index_with(common::engine(), &j).expect("second");
    assert_eq!((report.described, report.reused, report.removed), (1, 3, 1));
    assert_eq!(index.len(), 4);
    assert!(index.entries.iter().any(|e| e.path == "new.png"));
}

#[test]
fn sigterm_during_indexing_saves_and_the_rerun_completes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 120);
    let index_path = tmp.path().join("i.msidx");
    let mut child = index_command(&db, &index_path).spawn().expect("spawn");
    wait_for(&index_path, &mut child);
    signal(&child, "-TERM");
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("run the same command again"), "{stderr}");
    let partial = Index::load(&index_path).expect("the saved partial index is valid");
    assert!(
        !partial.is_empty() && partial.len() < 120,
        "{}",
        partial.len()
    );
    assert_eq!(partial.pending + partial.len(), 120);
    let search = bin()
        .args(["search", "--index"])
        .arg(&index_path)
        .arg(db.join("img1.png"))
        .output()
        .expect("search");
    assert!(String::from_utf8_lossy(&search.stderr).contains("this index is partial"));
    let out = index_command(&db, &index_path).output().expect("rerun");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("{} unchanged", partial.len())),
        "{stdout}"
    );
    let complete = Index::load(&index_path).expect("complete");
    assert_eq!((complete.len(), complete.pending), (120, 0));
}

#[test]
fn sigkill_at_any_moment_then_index_again_answers_as_a_clean_build() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 60);
    let before = common::folder_checksums(&db);
    let clean = tmp.path().join("clean.msidx");
    let out = index_command(&db, &clean).output().expect("clean build");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let expected = answers(&clean, &db);

    let index_path = tmp.path().join("killed.msidx");
    // Killed just after its first save: the images described so far are kept.
    let mut child = index_command(&db, &index_path).spawn().expect("spawn");
    wait_for(&index_path, &mut child);
    signal(&child, "-KILL");
    child.wait().expect("wait");
    let kept = Index::load(&index_path).expect("a checkpoint survives SIGKILL");
    assert!(!kept.is_empty(), "the first batch was kept");
    // Killed again part way through the next run (its lock is left behind), then run to the end.
    let mut child = index_command(&db, &index_path).spawn().expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    signal(&child, "-KILL");
    child.wait().expect("wait");
    let out = index_command(&db, &index_path).output().expect("rerun");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let done = Index::load(&index_path).expect("complete");
    assert_eq!((done.len(), done.pending), (60, 0));
    assert_same_answers(&answers(&index_path, &db), &expected);
    // No temporary or lock file is left beside the index, and the database folder is untouched.
    let leftovers: Vec<String> = std::fs::read_dir(tmp.path())
        .expect("dir")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.contains(".tmp") || n.ends_with(".lock"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert_eq!(
        common::folder_checksums(&db),
        before,
        "the database folder was written"
    );
}

#[test]
fn a_second_writer_and_another_folder_on_one_index_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    common::write_particles(&a, 40);
    common::write_particles(&b, 3);
    let index_path = tmp.path().join("shared.msidx");
    let mut first = index_command(&a, &index_path).spawn().expect("spawn");
    wait_for(&index_path, &mut first);
    let second = index_command(&a, &index_path).output().expect("second");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("is being written by another"));
    assert!(first.wait().expect("wait").success());
    // Another folder on the same index path: refused, the index kept.
    let other = index_command(&b, &index_path).output().expect("other");
    assert!(!other.status.success());
    assert!(String::from_utf8_lossy(&other.stderr).contains("belongs to another database"));
    assert_eq!(Index::load(&index_path).expect("kept").len(), 40);
    // The same folder reached through `..` is the same database: nothing to describe.
    let dotted = tmp.path().join("b/../a");
    let out = index_command(&dotted, &index_path)
        .output()
        .expect("dotted");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("40 unchanged"));
    // An index path that cannot be written fails at once, before any image is described.
    let blocked = tmp.path().join("file");
    std::fs::write(&blocked, b"x").expect("w");
    let t = std::time::Instant::now();
    let out = index_command(&a, blocked.join("i.msidx"))
        .output()
        .expect("blocked");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot create the index folder"));
    assert!(t.elapsed().as_secs() < 10);
}

#[test]
fn search_answers_good_queries_beside_bad_ones() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 5);
    let index_path = tmp.path().join("i.msidx");
    index_with(common::engine(), &job(&db, &index_path)).expect("index");
    let bad = tmp.path().join("bad.png");
    std::fs::write(&bad, b"nope").expect("w");
    let out = bin()
        .args(["search", "--json", "--top-k", "50", "--index"])
        .arg(&index_path)
        .arg(db.join("img1.png"))
        .arg(&bad)
        .arg(db.join("img2.png"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1), "one query failed");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(
        lines[0]["results"].as_array().expect("results").len(),
        5,
        "top-k beyond the size gives the full ranking"
    );
    assert_eq!(lines[0]["results"][0]["path"], "img1.png");
    assert_eq!(lines[0]["results"][0]["rank"], 1);
    assert!(lines[1]["error"]
        .as_str()
        .expect("error")
        .contains("bad.png"));
    assert_eq!(lines[2]["results"][0]["path"], "img2.png");
}

#[test]
fn decompression_bombs_are_skipped_with_a_message_before_any_allocation() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 3);
    let bombs = common::write_crafted_headers(&db);
    for b in &bombs {
        let e = morphosearch::engine::imaging::preprocess::load_image(b);
        let text = match e {
            Err(e) => e.to_string(),
            Ok(img) => panic!(
                "{} decoded to {} x {}",
                b.display(),
                img.width(),
                img.height()
            ),
        };
        assert!(!text.contains("panicked"), "{text}");
    }
    let png = morphosearch::engine::imaging::preprocess::load_image(&bombs[0])
        .expect_err("46000 x 46000")
        .to_string();
    assert!(png.contains("46000 x 46000 px would take 2017 MB"), "{png}");
    let out = index_command(&db, tmp.path().join("i.msidx"))
        .output()
        .expect("index");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let index = Index::load(&tmp.path().join("i.msidx")).expect("index");
    assert_eq!(index.len(), 3, "the good images are indexed");
    assert_eq!(index.problems.len(), 4, "{:?}", index.problems);
}

#[test]
fn search_messages_say_what_is_wrong_once() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 4);
    let index_path = tmp.path().join("i.msidx");
    index_with(common::engine(), &job(&db, &index_path)).expect("index");
    let black = tmp.path().join("black.png");
    image::GrayImage::new(64, 64).save(&black).expect("save");
    let out = bin()
        .args(["search", "--index"])
        .arg(&index_path)
        .arg(tmp.path().join("missing.png"))
        .arg(&black)
        .output()
        .expect("search");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("missing.png does not exist"), "{stderr}");
    assert!(!stderr.contains("os error"), "{stderr}");
    assert!(!stderr.contains("cannot read or write"), "{stderr}");
    assert!(
        stderr.contains("black.png is one grey level throughout"),
        "{stderr}"
    );
    let out = bin()
        .args(["search", "--top-k", "0", "--index"])
        .arg(&index_path)
        .arg(&black)
        .output()
        .expect("search");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--top-k 0"));
}

#[test]
fn changing_only_the_contour_settings_redraws_contours_and_keeps_image_descriptors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 6);
    let index_path = tmp.path().join("i.msidx");
    let mut j = job(&db, &index_path);
    let (first, _) = index_with(common::engine(), &j).expect("first");
    j.sketch.contours.blur_sigma += 1.5;
    let (second, report) = index_with(common::engine(), &j).expect("second");
    assert!(
        report
            .notes
            .iter()
            .any(|n| n.contains("contour settings changed")),
        "{:?}",
        report.notes
    );
    assert_eq!(second.len(), 6);
    for (a, b) in first.entries.iter().zip(&second.entries) {
        assert_eq!(a.path, b.path);
        assert_eq!(a.raw, b.raw, "the image descriptor of {} was kept", a.path);
        assert_ne!(
            a.sketch_raw, b.sketch_raw,
            "the contours of {} were redrawn",
            a.path
        );
        assert_ne!(
            a.edge_raw, b.edge_raw,
            "the edge map of {} was redone",
            a.path
        );
    }
    // Only the image weight (a query-time setting) changed: nothing is redrawn.
    j.sketch.image_weight = 0.3;
    j.sketch.edge_weight = 0.2;
    let (third, _) = index_with(common::engine(), &j).expect("third");
    for (b, c) in second.entries.iter().zip(&third.entries) {
        assert_eq!(b.sketch_raw, c.sketch_raw);
        assert_eq!(b.edge_raw, c.edge_raw);
    }
}

/// A file name that is not UTF-8 (Latin-1 "café" from an old instrument PC) is indexed,
/// searched and shown like any other, under its lossy name.
#[cfg(unix)]
#[test]
fn file_names_that_are_not_utf8_are_indexed() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 3);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.png");
    std::fs::copy(db.join("img1.png"), db.join(name)).expect("copy");
    std::fs::remove_file(db.join("img1.png")).expect("rm");
    let index_path = tmp.path().join("i.msidx");
    let (index, report) = index_with(common::engine(), &job(&db, &index_path)).expect("index");
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(index.len(), 3);
    let entry = index
        .entries
        .iter()
        .position(|e| e.path == "caf\u{fffd}.png")
        .expect("indexed under its lossy name");
    let path = morphosearch::engine::library::database::resolve(&db, &index.entries[entry].path);
    assert_eq!(path.file_name(), Some(name), "the real file is found again");
    let hits = common::engine()
        .search_image(
            &index,
            &morphosearch::engine::imaging::preprocess::load_image(&path).expect("decodes"),
            1,
        )
        .expect("search");
    assert_eq!(hits[0].entry, entry);
}
