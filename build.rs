//! Compresses the chat page (`ui/`) into `OUT_DIR`, where `src/http/ui.rs`
//! includes it: the binary holds each file gzip-encoded only (about a
//! third of its size; the size budget is tight), and serves it as such.

use std::io::Write;
use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

/// The files of the page, as `src/http/ui.rs` names them.
const FILES: [&str; 3] = ["index.html", "app.js", "style.css"];

fn main() {
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo::rerun-if-changed=ui");
    for name in FILES {
        let source = Path::new("ui").join(name);
        println!("cargo::rerun-if-changed={}", source.display());
        let text = std::fs::read(&source)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", source.display()));
        // why GzBuilder defaults: no file name and mtime 0, so the same
        // source gives the same bytes (reproducible builds).
        let mut gz = GzEncoder::new(Vec::new(), Compression::best());
        gz.write_all(&text).expect("writing to memory");
        let gz = gz.finish().expect("writing to memory");
        std::fs::write(Path::new(&out).join(format!("{name}.gz")), gz)
            .expect("cannot write to OUT_DIR");
    }
}
