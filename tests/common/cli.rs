//! Driving the command-line program from tests: indexing runs to interrupt, and the search
//! answers that "answers as a clean build" compares.

use std::path::Path;
use std::process::Command;

use morphosearch::engine::library::index::Index;

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_morphosearch"))
}

/// `morphosearch index DB --index INDEX` with its output captured (`index` may be a file or a
/// `postgresql://` URL).
pub fn index_command(db: &Path, index: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = bin();
    c.arg("index")
        .arg(db)
        .arg("--index")
        .arg(index)
        .arg("--device")
        .arg("cpu")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    c
}

/// Waits until the library at `index` holds its first described images, or fails.
pub fn wait_for(index: impl AsRef<Path>, child: &mut std::process::Child) {
    let start = std::time::Instant::now();
    while !Index::load(index.as_ref()).is_ok_and(|i| !i.is_empty()) {
        assert!(
            child.try_wait().expect("poll").is_none(),
            "indexing ended before its first images were stored"
        );
        assert!(
            start.elapsed().as_secs() < 120,
            "no images stored within 2 minutes"
        );
        std::thread::sleep(std::time::Duration::from_millis(30));
    }
}

pub fn signal(child: &std::process::Child, name: &str) {
    Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .expect("kill");
}

/// `search --json` lines of three queries (images img1, img7, img20 of `db`), without the
/// query path.
pub fn answers(index: impl AsRef<std::ffi::OsStr>, db: &Path) -> Vec<serde_json::Value> {
    let out = bin()
        .args(["search", "--json", "--top-k", "10", "--index"])
        .arg(index)
        .args([
            db.join("img1.png"),
            db.join("img7.png"),
            db.join("img20.png"),
        ])
        .output()
        .expect("search");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).expect("json");
            v["query"] = serde_json::Value::Null;
            v
        })
        .collect()
}

/// The same results in the same order, scores within 2e-4 (floating-point sums of another
/// order).
pub fn assert_same_answers(got: &[serde_json::Value], expected: &[serde_json::Value]) {
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(expected) {
        let results = |v: &serde_json::Value| v["results"].as_array().cloned().expect("results");
        let (g, e) = (results(g), results(e));
        let paths = |v: &[serde_json::Value]| -> Vec<String> {
            v.iter().map(|r| r["path"].to_string()).collect()
        };
        assert_eq!(paths(&g), paths(&e));
        for (a, b) in g.iter().zip(&e) {
            let (a, b) = (
                a["score"].as_f64().expect("score"),
                b["score"].as_f64().expect("score"),
            );
            assert!((a - b).abs() <= 2e-4, "{a} vs {b}");
        }
    }
}
