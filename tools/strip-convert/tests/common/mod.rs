//! Helpers shared by strip-convert's integration tests: running the tool, and reading
//! samples back with code no one here wrote (tifffile, the `jpeg2k` crate,
//! `opj_decompress`, jpylyzer).
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub fn tool() -> testkit::Cmd {
    testkit::tool("strip-convert")
}

/// Run strip-convert with `args`; return the records and the exit code.
pub fn convert(args: &[&str]) -> (Vec<Value>, i32) {
    let ran = tool().args(args).run();
    (ran.records(), ran.code())
}

pub fn section(r: &Value) -> &Value {
    &r["strip-convert"]
}

/// The source samples as tifffile reads them, as u16 values in (row, column, component)
/// order, with the shape. WhiteIsZero is inverted (JP2 greyscale has 0 black).
pub fn tiff_samples(py: &Path, tiff: &Path, page: usize) -> (Vec<u16>, [usize; 3]) {
    tiff_samples_many(py, &[tiff.to_path_buf()], page)
        .pop()
        .expect("one result")
}

/// [`tiff_samples`] of many files in one Python run.
pub fn tiff_samples_many(py: &Path, tiffs: &[PathBuf], page: usize) -> Vec<(Vec<u16>, [usize; 3])> {
    let code = r#"
import sys, numpy as np, tifffile
page, out = int(sys.argv[1]), sys.argv[2]
for i, path in enumerate(sys.argv[3:]):
    with tifffile.TiffFile(path) as t:
        p = t.pages[page]
        a = p.asarray()
        if p.planarconfig == 2 and a.ndim == 3:
            a = np.moveaxis(a, 0, -1)
        if a.ndim == 2:
            a = a[:, :, None]
        if a.dtype == bool:
            a = a.astype(np.uint8)
        if p.photometric == 0:
            a = (2 ** p.bitspersample - 1) - a
        if p.photometric == 3:
            # Palette: expanded through the colour map, 8-bit when every entry is exact.
            cm = p.colormap
            if (cm % 257 == 0).all():
                cm = cm // 257
            a = np.moveaxis(cm[:, a[:, :, 0]], 0, -1)
        a = a.astype('<u2')
        open(f"{out}/{i}.bin", 'wb').write(a.tobytes())
        print(*a.shape)
"#;
    let dir = testkit::tempdir();
    let mut args = vec![page.to_string(), dir.path().to_str().unwrap().to_string()];
    args.extend(tiffs.iter().map(|t| t.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let shapes = testkit::run_python(py, code, &args);
    shapes
        .lines()
        .enumerate()
        .map(|(i, shape)| {
            let dims: Vec<usize> = shape
                .split_whitespace()
                .map(|s| s.parse().unwrap())
                .collect();
            let bytes = std::fs::read(dir.path().join(format!("{i}.bin"))).unwrap();
            let v = bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect();
            (v, [dims[0], dims[1], dims[2]])
        })
        .collect()
}

/// Decode with the `jpeg2k` crate into (row, column, component) u16 values.
pub fn jp2_samples(jp2: &Path) -> (Vec<u16>, [usize; 3]) {
    let img =
        jpeg2k::Image::from_bytes(&std::fs::read(jp2).unwrap()).expect("jpeg2k decodes the output");
    let comps = img.components();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut v = vec![0u16; w * h * comps.len()];
    for (c, comp) in comps.iter().enumerate() {
        for (i, &s) in comp.data().iter().enumerate() {
            v[i * comps.len() + c] = s as u16;
        }
    }
    (v, [h, w, comps.len()])
}

/// Decode with `opj_decompress` to a TIFF, read back with tifffile.
pub fn opj_samples(py: &Path, jp2: &Path) -> Option<(Vec<u16>, [usize; 3])> {
    let dir = testkit::tempdir();
    let out = dir.path().join("dec.tif");
    let st = Command::new("opj_decompress")
        .args(["-i", jp2.to_str().unwrap(), "-o", out.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match st {
        Ok(s) if s.success() => Some(tiff_samples(py, &out, 0)),
        Ok(s) => panic!("opj_decompress failed on {}: {s}", jp2.display()),
        Err(_) if !testkit::validators_required() => {
            eprintln!("skipped: opj_decompress not installed");
            None
        }
        Err(e) => panic!("opj_decompress: {e}"),
    }
}

/// jpylyzer's properties of a file, as (validity, XML text).
pub fn jpylyzer(jp2: &Path) -> Option<(bool, String)> {
    let py = testkit::python(&["jpylyzer"])?;
    let out = Command::new(py)
        .args(["-m", "jpylyzer.jpylyzer", jp2.to_str().unwrap()])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .or_else(|| {
            let bin = py_bin_dir().join("jpylyzer");
            Command::new(bin).arg(jp2).output().ok()
        })
        .expect("run jpylyzer");
    let xml = String::from_utf8_lossy(&out.stdout).into_owned();
    let valid = xml_value(&xml, "isValid") == Some("True".into());
    Some((valid, xml))
}

pub fn py_bin_dir() -> PathBuf {
    testkit::workspace_root().join("target/venv/bin")
}

/// The text of the first `<tag ...>text</tag>` in `xml`.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}");
    let start = xml.find(&open)?;
    let after = start + xml[start..].find('>')? + 1;
    let end = after + xml[after..].find(&format!("</{tag}>"))?;
    Some(xml[after..end].to_string())
}

pub fn output_of(r: &Value) -> PathBuf {
    PathBuf::from(section(r)["output"].as_str().expect("output path"))
}
