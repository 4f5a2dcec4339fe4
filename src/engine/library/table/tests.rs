//! Tests of the parent module.

use super::*;

#[test]
fn detects_the_image_column_and_reports_leftovers() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("t.csv");
    std::fs::write(
        &csv,
        "id,file,T\n0,a/0.tif,20\n1,a/1.tif,30\n2,a/9.tif,40\n",
    )
    .expect("w");
    let images = vec![
        "a/0.tif".to_string(),
        "a/1.tif".to_string(),
        "b.png".to_string(),
    ];
    let t = read_table(&csv, &images, None).expect("table");
    assert_eq!(t.image_column, "file");
    assert_eq!(t.columns, vec!["id", "T"]);
    assert_eq!(t.rows["a/1.tif"][1].number, Some(30.0));
    assert_eq!(t.rows_without_image.len(), 1);
    assert!(!t.rows.contains_key("b.png"));
}

#[test]
fn ragged_rows_and_bad_bytes_are_warnings() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, b"file,A,B\nx.png,1\ny.png,2,3,4\nz.png,\xff\xfe,5\n").expect("w");
    let images: Vec<String> = ["x.png", "y.png", "z.png"].map(String::from).to_vec();
    let t = read_table(&csv, &images, None).expect("table");
    assert_eq!(t.rows.len(), 3);
    assert_eq!(t.rows["x.png"][1].text, "");
    assert!(t.rows["z.png"][0].text.contains('\u{fffd}'));
    assert!(
        t.warnings.iter().any(|w| w.contains("not UTF-8")),
        "{:?}",
        t.warnings
    );
    assert!(
        t.warnings.iter().any(|w| w.contains("line 2 has 2 cells")),
        "{:?}",
        t.warnings
    );
}

#[test]
fn missing_image_column_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tmp");
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,b\n1,2\n").expect("w");
    let images = vec!["x.png".to_string()];
    let err = read_table(&csv, &images, None).expect_err("no column");
    assert!(err.to_string().contains("--image-column"), "{err}");
    let err = read_table(&csv, &images, Some("file")).expect_err("no such column");
    assert!(err.to_string().contains("has no column \"file\""), "{err}");
}
