// The migrations are embedded at compile time: rebuild when one changes, and write their
// concatenated SQL for the test template's fingerprint (schema::testing).
use std::fs;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=../migrations");
    let mut dirs: Vec<_> = fs::read_dir("../migrations")
        .expect("migrations folder")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    let mut digest = String::new();
    for dir in dirs {
        println!("cargo:rerun-if-changed={}", dir.display());
        digest.push_str(&dir.display().to_string());
        for file in ["up.sql", "down.sql"] {
            let path = dir.join(file);
            println!("cargo:rerun-if-changed={}", path.display());
            digest.push_str(&fs::read_to_string(&path).unwrap_or_default());
        }
    }
    let out = std::env::var("OUT_DIR").expect("OUT_DIR");
    fs::write(Path::new(&out).join("migrations_digest.txt"), digest).expect("write digest");
}
