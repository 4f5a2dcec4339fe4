//! The library in a database: SQLite files that other tools read, a PostgreSQL library that
//! answers exactly as the SQLite one, several indexers sharing one PostgreSQL library, and
//! SIGKILL during indexing into PostgreSQL. The PostgreSQL tests start a throwaway cluster
//! (tests/common/pg.rs) and skip with a printed reason where PostgreSQL is not installed.

mod common;

use common::cli::{answers, assert_same_answers, bin, index_command, signal, wait_for};
use common::pg::Cluster;
use morphosearch::engine::library::index::Index;

fn run_ok(c: &mut std::process::Command) -> std::process::Output {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The counts line `index --json` ends with.
fn counts(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().expect("a JSON line");
    serde_json::from_str(last).expect("json counts")
}

#[test]
fn an_sqlite_library_is_a_plain_database_other_tools_read() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 12);
    let lib = tmp.path().join("lib.db");
    let out = run_ok(index_command(&db, &lib).arg("--json"));
    let c = counts(&out);
    assert_eq!(
        (
            c["described"].as_u64(),
            c["images"].as_u64(),
            c["failed"].as_u64()
        ),
        (Some(12), Some(12), Some(0))
    );
    let again = counts(&run_ok(index_command(&db, &lib).arg("--json")));
    assert_eq!(
        (again["described"].as_u64(), again["unchanged"].as_u64()),
        (Some(0), Some(12))
    );
    // Python's sqlite3, read-only, sees the schema and the rows.
    let script = "import sqlite3, sys\n\
                  c = sqlite3.connect('file:' + sys.argv[1] + '?mode=ro', uri=True)\n\
                  print(c.execute(\"SELECT value FROM meta WHERE key = 'schema_version'\").fetchone()[0])\n\
                  print(c.execute(\"SELECT COUNT(*) FROM images WHERE state = 'done'\").fetchone()[0])\n\
                  print(c.execute('SELECT COUNT(*) FROM descriptors WHERE length(raw) >= 2048').fetchone()[0])\n\
                  print(c.execute('SELECT COUNT(*) FROM thumbnails').fetchone()[0])\n";
    match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&lib)
        .output()
    {
        Ok(out) => {
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n12\n12\n12\n");
        }
        Err(e) => println!("python3 not available ({e}): read-only check skipped"),
    }
}

#[test]
fn postgres_library_answers_as_the_sqlite_one_and_hides_its_password() {
    let Some(pg) = Cluster::start("postgres_library_answers_as_the_sqlite_one") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 24);
    let lib = tmp.path().join("lib.db");
    run_ok(&mut index_command(&db, &lib));
    // Trust authentication ignores the password: it only has to stay out of every message.
    let url = pg
        .create_db("answers")
        .replace("postgres@", "postgres:Hunter2secret@");
    let out = run_ok(index_command(&db, &url).arg("--json"));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!printed.contains("Hunter2secret"), "{printed}");
    assert!(printed.contains("postgres:***@"), "{printed}");
    assert_eq!(counts(&out)["described"].as_u64(), Some(24));
    assert_same_answers(&answers(&url, &db), &answers(&lib, &db));
    assert_eq!(
        answers(&url, &db),
        answers(&lib, &db),
        "exactly the same answers"
    );
    let wrong = bin()
        .args(["search", "--index"])
        .arg(url.replace("/answers?", "/nosuchdb?"))
        .arg(db.join("img1.png"))
        .output()
        .expect("search");
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(!wrong.status.success());
    assert!(
        stderr.contains("cannot connect") && !stderr.contains("Hunter2secret"),
        "{stderr}"
    );
}

#[test]
fn two_indexers_at_once_share_one_postgres_library() {
    let Some(pg) = Cluster::start("two_indexers_at_once_share_one_postgres_library") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 40);
    let url = pg.create_db("shared");
    let spawn = || {
        index_command(&db, &url)
            .arg("--json")
            .spawn()
            .expect("spawn")
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (
        a.wait_with_output().expect("a"),
        b.wait_with_output().expect("b"),
    );
    for out in [&a, &b] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (ca, cb) = (counts(&a), counts(&b));
    println!("indexer A {ca}, indexer B {cb}");
    let described = |c: &serde_json::Value| c["described"].as_u64().expect("described");
    assert_eq!(
        described(&ca) + described(&cb),
        40,
        "every image described exactly once"
    );
    assert_eq!(ca["images"].as_u64(), Some(40));
    assert_eq!(cb["images"].as_u64(), Some(40));
    let lib = tmp.path().join("lib.db");
    run_ok(&mut index_command(&db, &lib));
    assert_eq!(answers(&url, &db), answers(&lib, &db));
}

#[test]
fn sigkill_while_indexing_into_postgres_then_index_again_answers_as_a_clean_build() {
    let Some(pg) = Cluster::start("sigkill_while_indexing_into_postgres") else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("db");
    common::write_particles(&db, 40);
    let clean = tmp.path().join("clean.db");
    run_ok(&mut index_command(&db, &clean));
    let url = pg.create_db("killed");
    let mut child = index_command(&db, &url).spawn().expect("spawn");
    wait_for(std::path::Path::new(&url), &mut child);
    signal(&child, "-KILL");
    child.wait().expect("wait");
    let kept = Index::load(std::path::Path::new(&url)).expect("readable after SIGKILL");
    assert!(!kept.is_empty() && kept.pending > 0, "{} kept", kept.len());
    let out = run_ok(index_command(&db, &url).arg("--json"));
    let c = counts(&out);
    assert_eq!(
        c["described"].as_u64().expect("n") + c["unchanged"].as_u64().expect("n"),
        40
    );
    assert_eq!(answers(&url, &db), answers(&clean, &db));
}
