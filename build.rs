//! Marks which shared data sets sit beside the checkout, so that the tests needing them are
//! reported as ignored (with the reason, and counted by `cargo test`) instead of passing
//! silently when the data is absent.

use std::path::Path;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (cfg, marker) in [
        ("has_caco3", "../shared/data/caco3/synthesis_conditions.csv"),
        ("has_emps", "../shared/data/emps_train/images.csv"),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let path = root.join(marker);
        println!("cargo::rerun-if-changed={}", path.display());
        if path.is_file() {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    println!("cargo::rerun-if-changed=build.rs");
}
