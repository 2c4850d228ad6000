//! Helpers of the cbz-stream tests: the tool, real JPEG pages, and Python's zipfile as
//! the outside reference for what the archives hold.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// Run `cbz-stream` with `args`, feeding `stdin`.
pub fn run(args: &[&str], stdin: &str) -> testkit::Ran {
    testkit::tool("cbz-stream").args(args).stdin(stdin).run()
}

/// Run it and return its records, asserting the exit status.
pub fn records(args: &[&str], stdin: &str, code: i32) -> Vec<serde_json::Value> {
    run(args, stdin).expect_code(code).records()
}

/// A baseline JPEG of `w` x `h` with content from `seed`.
pub fn jpeg(w: u16, h: u16, seed: u64) -> Vec<u8> {
    let mut rng = testkit::Rng::new(seed);
    let base = rng.bytes(3);
    let mut px = Vec::with_capacity(usize::from(w) * usize::from(h) * 3);
    for y in 0..h {
        for x in 0..w {
            px.push(base[0].wrapping_add(x as u8));
            px.push(base[1].wrapping_add(y as u8));
            px.push(base[2]);
        }
    }
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, 85)
        .encode(&px, w, h, jpeg_encoder::ColorType::Rgb)
        .unwrap();
    out
}

/// Write `bytes` to `dir/name`, creating directories.
pub fn put(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, bytes).unwrap();
    p
}

/// `unzip -t` passes on `archive`.
pub fn unzip_t(archive: &Path) {
    testkit::cmd("unzip").arg("-t").arg(archive).ok();
}

/// Python's view of an archive: `testzip()` (None when every CRC is right), and per
/// entry its name, method (0 stored, 8 deflated), size and bytes as hex.
pub const ZIPFILE: &str = r#"
import json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    bad = z.testzip()
    entries = [{"name": i.filename, "method": i.compress_type, "size": i.file_size,
                "data": z.read(i).hex()} for i in z.infolist()]
print(json.dumps({"testzip": bad, "entries": entries}))
"#;

/// The archive as Python's zipfile reads it, or None when no Python (and validators
/// are not required).
pub fn python_zip(archive: &Path) -> Option<serde_json::Value> {
    let py = testkit::python(&["zipfile"])?;
    let out = testkit::run_python(&py, ZIPFILE, &[archive.to_str().unwrap()]);
    Some(serde_json::from_str(&out).unwrap())
}

/// Bytes of a hex string.
pub fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}
