//! Tests of the parent module (SQLite; the PostgreSQL engine is tested against a throwaway
//! server in tests/library.rs).

use super::*;
use crate::engine::library::index::tests::toy_index;
use crate::engine::library::index::Space;

/// A toy library in the order the store reads it (by path), with records and particles.
fn library(n: usize) -> Index {
    let mut idx = toy_index(n);
    idx.entries.sort_by(|a, b| a.path.cmp(&b.path));
    idx.columns = vec!["Polymer".into(), "Temperature, C".into()];
    idx.params = (0..n)
        .map(|i| {
            vec![
                ParamValue {
                    text: if i % 2 == 0 { "PEG" } else { "PSS" }.into(),
                    number: None,
                    unit: None,
                },
                ParamValue {
                    text: format!("{}", 20 + i),
                    number: Some(20.0 + i as f64),
                    unit: Some("C".into()),
                },
            ]
        })
        .collect();
    idx.entries[1].particles = Some(crate::engine::particles::Summary {
        count: 7,
        ..Default::default()
    });
    idx.table_path = Some(PathBuf::from("/db/table.csv"));
    idx.refit();
    idx
}

#[test]
fn a_library_reads_back_as_written() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("lib.db");
    let idx = library(12);
    idx.save(&path).expect("save");
    let back = Index::load(&path).expect("load");
    assert_eq!(back, idx);
    // Written again over itself: the same library, not twice the images.
    back.save(&path).expect("save again");
    assert_eq!(Index::load(&path).expect("load"), idx);
}

#[test]
fn rows_without_projected_vectors_are_refitted_on_read() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("lib.db");
    let idx = library(6);
    idx.save(&path).expect("save");
    // As an interrupted run leaves them: described, not yet projected.
    let mut store = Store::open(&Location::Sqlite(path.clone()), false).expect("open");
    store
        .db
        .execute("UPDATE descriptors SET image_vec = NULL", &[])
        .expect("clear");
    assert_eq!(store.read().expect("read"), idx);
}

#[test]
fn a_library_read_for_searching_leaves_out_only_the_raw_descriptors() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("lib.db");
    let idx = library(8);
    idx.save(&path).expect("save");
    let lean = Index::load_for_search(&path).expect("load for search");
    let mut want = idx.clone();
    for e in &mut want.entries {
        e.raw.clear();
        e.sketch_raw.clear();
        e.edge_raw.clear();
    }
    assert_eq!(lean, want);
    // It searches and maps as the whole library does.
    let q = &idx.entries[3].raw;
    assert_eq!(
        lean.search(q, Space::Image, 4),
        idx.search(q, Space::Image, 4)
    );
    assert_eq!(lean.map_coords(), idx.map_coords());
    assert_eq!(lean.map_coords().len(), 8);
    // Saving it would lose the raw descriptors: refused, the library untouched.
    let e = lean.save(&path).expect_err("lean save").to_string();
    assert!(e.contains("searching only"), "{e}");
    assert_eq!(Index::load(&path).expect("load"), idx);
    // An unfinished library is read whole (its projections are refitted from the raws).
    let mut store = Store::open(&Location::Sqlite(path.clone()), false).expect("open");
    store
        .db
        .execute("UPDATE descriptors SET sketch_vec = NULL", &[])
        .expect("clear");
    assert_eq!(store.read_for_search().expect("read"), idx);
}

#[test]
fn a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("lib.db");
    library(3).save(&path).expect("save");
    let mut store = Store::open(&Location::Sqlite(path.clone()), false).expect("open");
    store.set_meta("schema_version", "99").expect("bump");
    drop(store);
    let before = std::fs::read(&path).expect("read");
    let e = Index::load(&path).expect_err("newer").to_string();
    assert!(
        e.contains("newer morphosearch") && e.contains("schema 99"),
        "{e}"
    );
    let e = Store::open(&Location::Sqlite(path.clone()), true)
        .err()
        .expect("refused for writing too")
        .to_string();
    assert!(e.contains("newer"), "{e}");
    assert_eq!(std::fs::read(&path).expect("read"), before, "not rewritten");
}

#[test]
fn other_files_are_named_for_what_they_are() {
    let dir = tempfile::tempdir().expect("tmp");
    let old = dir.path().join("old.msidx");
    std::fs::write(&old, b"MORPHIDX\x05\0\0\0rest").expect("write");
    let e = Index::load(&old).expect_err("old").to_string();
    assert!(e.contains("old single-file format"), "{e}");
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database at all, just text").expect("write");
    let e = Index::load(&junk).expect_err("junk").to_string();
    assert!(e.contains("junk.db"), "{e}");
    let missing = dir.path().join("missing.db");
    let e = Index::load(&missing).expect_err("missing").to_string();
    assert!(e.contains("missing.db"), "{e}");
    assert!(!missing.exists(), "reading never creates a library");
}

#[test]
fn passwords_never_reach_a_message() {
    assert_eq!(
        redact_url("postgresql://chem:s3cret@lab-db:5432/syntheses"),
        "postgresql://chem:***@lab-db:5432/syntheses"
    );
    assert_eq!(
        redact_url("postgres://lab-db/syntheses?user=chem&password=s3cret&sslmode=disable"),
        "postgres://lab-db/syntheses?user=chem&password=***&sslmode=disable"
    );
    assert_eq!(
        redact_url("postgresql:///lib?host=/tmp/sock&port=5433"),
        "postgresql:///lib?host=/tmp/sock&port=5433"
    );
    let url = "postgresql://chem:s3cret@127.0.0.1:1/none";
    let e = Store::open(&Location::of(Path::new(url)), true)
        .err()
        .expect("nothing listens on port 1")
        .to_string();
    assert!(!e.contains("s3cret") && e.contains("chem:***@"), "{e}");
    assert_eq!(Location::of(Path::new(url)).display(), redact_url(url));
}

#[test]
fn blobs_keep_every_bit() {
    let v = [0.0f32, -1.5, f32::MIN_POSITIVE, 3.25e7, f32::MAX];
    assert_eq!(blob_f32(&f32_blob(&v)), v);
}
