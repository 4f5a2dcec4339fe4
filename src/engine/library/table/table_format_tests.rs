//! Tests of the parent module.

use super::*;

fn images(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{i}.tif")).collect()
}

/// The CaCO3 shape: 215 rows, `image_id` = N, `image_file` = images/N.tif, a stirring column
/// that is 0 in most rows; the folder holds only 20 of the images.
fn caco3_like() -> String {
    let mut t = String::from("image_id,image_file,\"Stirring, rpm\",\"Temperature, C\"\n");
    for i in 0..215 {
        let stirring = if i % 2 == 0 { 0 } else { 300 };
        t.push_str(&format!("{i},images/{i}.tif,{stirring},{}\n", 20 + i));
    }
    t
}

#[test]
fn a_column_of_zeros_does_not_win_over_the_image_column() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, caco3_like()).expect("write");
    let t = read_table(&path, &images(20), None).expect("table");
    assert_eq!(t.image_column, "image_file");
    assert_eq!(t.rows.len(), 20);
    let temp = t
        .columns
        .iter()
        .position(|c| c == "Temperature, C")
        .expect("column");
    for i in 0..20 {
        let row = &t.rows[&format!("{i}.tif")];
        assert_eq!(row[temp].number, Some(20.0 + i as f64), "image {i}");
    }
    assert!(t.warnings.is_empty(), "{:?}", t.warnings);
}

#[test]
fn semicolons_tabs_and_utf16_tables_read_alike() {
    let tmp = tempfile::tempdir().expect("tmp");
    let comma = caco3_like();
    let semicolon = comma.replace(",images", ";images").replace(',', ";");
    let semicolon = semicolon
        .replace("\"Stirring; rpm\"", "\"Stirring, rpm\"")
        .replace("\"Temperature; C\"", "\"Temperature, C\"");
    let tab = comma
        .replace(',', "\t")
        .replace("\"Stirring\t rpm\"", "\"Stirring, rpm\"")
        .replace("\"Temperature\t C\"", "\"Temperature, C\"");
    let mut utf16 = vec![0xff, 0xfe];
    for u in semicolon.encode_utf16() {
        utf16.extend_from_slice(&u.to_le_bytes());
    }
    for (name, bytes) in [
        ("semi.csv", semicolon.into_bytes()),
        ("tab.tsv", tab.into_bytes()),
        ("utf16.csv", utf16),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, &bytes).expect("write");
        let t = read_table(&path, &images(20), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.image_column, "image_file", "{name}");
        assert_eq!(t.rows.len(), 20, "{name}");
        assert_eq!(
            t.columns,
            vec!["image_id", "Stirring, rpm", "Temperature, C"],
            "{name}"
        );
        let again = read_table(&path, &images(20), Some("image_file")).expect("named column");
        assert_eq!(again.rows.len(), 20);
    }
}

#[test]
fn xlsx_spreadsheets_are_read() {
    use std::io::Write;
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("t.xlsx");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).expect("create"));
    let options = zip::write::SimpleFileOptions::default();
    let cell = |r: usize, c: usize, v: &str| {
        let col = (b'A' + c as u8) as char;
        format!("<c r=\"{col}{r}\" t=\"inlineStr\"><is><t>{v}</t></is></c>")
    };
    let mut rows = format!(
        "<row r=\"1\">{}{}</row>",
        cell(1, 0, "file"),
        cell(1, 1, "Polymer")
    );
    for i in 0..20 {
        rows.push_str(&format!(
            "<row r=\"{r}\">{}{}</row>",
            cell(i + 2, 0, &format!("{i}.tif")),
            cell(i + 2, 1, if i % 2 == 0 { "PEG" } else { "PVP" }),
            r = i + 2
        ));
    }
    let files = [
        ("[Content_Types].xml", "<?xml version=\"1.0\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\"><Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/><Default Extension=\"xml\" ContentType=\"application/xml\"/><Override PartName=\"/xl/workbook.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml\"/><Override PartName=\"/xl/worksheets/sheet1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml\"/></Types>".to_string()),
        ("_rels/.rels", "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"xl/workbook.xml\"/></Relationships>".to_string()),
        ("xl/workbook.xml", "<?xml version=\"1.0\"?><workbook xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\" xmlns:r=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships\"><sheets><sheet name=\"Sheet1\" sheetId=\"1\" r:id=\"rId1\"/></sheets></workbook>".to_string()),
        ("xl/_rels/workbook.xml.rels", "<?xml version=\"1.0\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\"><Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet\" Target=\"worksheets/sheet1.xml\"/></Relationships>".to_string()),
        ("xl/worksheets/sheet1.xml", format!("<?xml version=\"1.0\"?><worksheet xmlns=\"http://schemas.openxmlformats.org/spreadsheetml/2006/main\"><sheetData>{rows}</sheetData></worksheet>")),
    ];
    for (name, body) in files {
        zip.start_file(name, options).expect("entry");
        zip.write_all(body.as_bytes()).expect("write");
    }
    zip.finish().expect("zip");
    let t = read_table(&path, &images(20), None).expect("xlsx table");
    assert_eq!(t.image_column, "file");
    assert_eq!(t.rows.len(), 20);
    assert_eq!(t.rows["3.tif"][0].text, "PVP");
}

#[test]
fn repeated_warnings_are_capped_with_a_count() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("t.csv");
    let mut t = String::from("file,x\n");
    for i in 0..5000 {
        t.push_str(&format!("{}.tif,{i}\n", i % 3));
    }
    std::fs::write(&path, t).expect("write");
    let table = read_table(&path, &images(3), None).expect("table");
    assert!(
        table.warnings.len() <= WARNINGS_PER_KIND + 1,
        "{}",
        table.warnings.len()
    );
    assert!(
        table
            .warnings
            .last()
            .is_some_and(|w| w.contains("4987 more rows repeating an image")),
        "{:?}",
        table.warnings.last()
    );
}

#[test]
fn binary_files_are_refused_without_dumping_bytes() {
    let tmp = tempfile::tempdir().expect("tmp");
    let path = tmp.path().join("t.csv");
    std::fs::write(&path, b"\x00\x01\x02\xff binary\x07\x1b[31m").expect("write");
    let e = read_table(&path, &images(3), None).expect_err("binary");
    let text = e.to_string();
    assert!(text.contains("not text"), "{text}");
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{7}'),
        "{text}"
    );
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
    /// Any bytes, as a table: a table or a clear error, never a panic; every warning and
    /// error prints without control characters.
    #[test]
    fn arbitrary_table_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..600)) {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.csv");
        std::fs::write(&path, &bytes).expect("write");
        match read_table(&path, &images(5), None) {
            Ok(t) => proptest::prop_assert!(t.warnings.len() <= 4 * (WARNINGS_PER_KIND + 1)),
            Err(e) => proptest::prop_assert!(!e.to_string().chars().any(|c| c.is_control() && c != '\n')),
        }
    }

    /// Tables of random cells in every delimiter and encoding read back the same cells.
    #[test]
    fn delimiters_and_encodings_round_trip(
        cells in proptest::collection::vec("[a-z0-9 .µ]{0,6}", 3..30),
        delimiter in proptest::sample::select(vec![',', ';', '\t']),
        utf16 in proptest::prelude::any::<bool>(),
    ) {
        let tmp = tempfile::tempdir().expect("tmp");
        let path = tmp.path().join("t.csv");
        let sep = delimiter.to_string();
        let mut text = format!("file{sep}a{sep}b\n");
        for (i, chunk) in cells.chunks(2).enumerate() {
            text.push_str(&format!("{}.tif{sep}{}{sep}{}\n", i % 5, chunk[0].trim(), chunk.get(1).map_or("", |c| c.trim())));
        }
        let bytes = if utf16 {
            let mut b = vec![0xff, 0xfe];
            for u in text.encode_utf16() {
                b.extend_from_slice(&u.to_le_bytes());
            }
            b
        } else {
            text.into_bytes()
        };
        std::fs::write(&path, &bytes).expect("write");
        let t = read_table(&path, &images(5), Some("file")).expect("table");
        proptest::prop_assert_eq!(t.columns.clone(), vec!["a".to_string(), "b".to_string()]);
        proptest::prop_assert!(!t.rows.is_empty());
    }
}
