//! `unpack`: the same files as `unzip`, and hostile archives (made with Python's zipfile)
//! refused with error records, nothing written outside the output directory.

mod common;
use common::*;
use std::path::{Path, PathBuf};

/// Every file below `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    fn go(root: &Path, d: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.push((
                    p.strip_prefix(root).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                ));
            }
        }
    }
    let mut v = Vec::new();
    go(dir, dir, &mut v);
    v.sort();
    v
}

#[test]
fn unpack_equals_unzip() {
    let dir = testkit::tempdir();
    let src = dir.path().join("src");
    for i in 0..5 {
        put(&src, &format!("ch {}/p{i}.jpg", i % 2), &jpeg(9, 9, i));
    }
    put(&src, "notes.txt", &b"text ".repeat(1000));
    let a = dir.path().join("a.cbz");
    records(
        &[
            "pack",
            "--keep-names",
            src.to_str().unwrap(),
            "-o",
            a.to_str().unwrap(),
        ],
        "",
        0,
    );
    let out = dir.path().join("out");
    let r = records(
        &[
            "unpack",
            a.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--base",
            dir.path().to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["status"], "ok");
    assert_eq!(r[0]["cbz-stream"]["pages"], 5);
    let peer = dir.path().join("peer");
    let st = std::process::Command::new("unzip")
        .arg("-q")
        .arg(&a)
        .arg("-d")
        .arg(&peer)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(tree(&out.join("a")), tree(&peer));
    // No temporary directory left behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["a"]);
}

/// Python that writes hostile archives into argv[1].
const HOSTILE: &str = r#"
import sys, zipfile, os
d = sys.argv[1]
def z(name, entries, method=zipfile.ZIP_STORED):
    with zipfile.ZipFile(os.path.join(d, name), "w", method) as f:
        for n, data in entries:
            if isinstance(n, zipfile.ZipInfo):
                f.writestr(n, data)
            else:
                f.writestr(n, data)
ok = ("001.jpg", b"\xff\xd8\xff\xe0 page")
z("slip.cbz", [ok, ("../evil.jpg", b"x")])
z("slip2.cbz", [ok, ("a/../../evil.jpg", b"x")])
z("abs.cbz", [ok, (os.path.join(d, "abs-evil.jpg"), b"x")])
z("drive.cbz", [ok, ("C:/evil.jpg", b"x")])
z("backslash.cbz", [ok, ("..\\evil.jpg", b"x")])
link = zipfile.ZipInfo("link.jpg")
link.create_system = 3
link.external_attr = (0o120777 << 16)
z("symlink.cbz", [ok, (link, "/etc/passwd")])
import warnings
warnings.simplefilter("ignore")
z("dup.cbz", [ok, ("002.jpg", b"a"), ("002.jpg", b"b")])
z("dupcase.cbz", [ok, ("Page.jpg", b"a"), ("page.JPG", b"b")])
z("filedir.cbz", [ok, ("x", b"a"), ("x/y.jpg", b"b")])
z("bomb.cbz", [ok, ("bomb.jpg", b"\0" * (64 << 20))], zipfile.ZIP_DEFLATED)
# A bad CRC: one byte of a stored entry's data changed after writing.
z("crc.cbz", [ok, ("002.jpg", b"UNIQUEPAYLOAD" * 10)])
p = os.path.join(d, "crc.cbz")
b = open(p, "rb").read().replace(b"UNIQUEPAYLOAD", b"UNIQUEPAYLOAX", 1)
open(p, "wb").write(b)
z("whole.cbz", [ok] + [("%03d.jpg" % i, b"\xff\xd8\xff" + bytes(5000)) for i in range(2, 40)])
b = open(os.path.join(d, "whole.cbz"), "rb").read()
open(os.path.join(d, "trunc.cbz"), "wb").write(b[: len(b) // 2])
# A liar: a deflated entry of 8 MiB whose headers declare 1000 bytes.
import struct
z("liar.cbz", [ok, ("liar.jpg", bytes(8 << 20))], zipfile.ZIP_DEFLATED)
p = os.path.join(d, "liar.cbz")
b = bytearray(open(p, "rb").read())
for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
    i = b.rfind(sig)
    b[i + off : i + off + 4] = struct.pack("<I", 1000)
open(p, "wb").write(bytes(b))
"#;

#[test]
fn hostile_archives_give_error_records_and_write_nothing() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["zipfile"]) else {
        return;
    };
    let arch = dir.path().join("in");
    std::fs::create_dir(&arch).unwrap();
    testkit::run_python(&py, HOSTILE, &[arch.to_str().unwrap()]);
    let out = dir.path().join("out");
    let cases = [
        ("slip", "hostile"),
        ("slip2", "hostile"),
        ("abs", "hostile"),
        ("drive", "hostile"),
        ("backslash", "hostile"),
        ("symlink", "hostile"),
        ("dup", "hostile"),
        ("dupcase", "hostile"),
        ("filedir", "hostile"),
        ("bomb", "hostile"),
        ("crc", "corrupt"),
        ("trunc", "corrupt"),
        ("liar", "corrupt|hostile"),
    ];
    let stdin: String = cases
        .iter()
        .map(|(n, _)| format!("{}\n", arch.join(format!("{n}.cbz")).display()))
        .collect();
    let r = records(
        &[
            "unpack",
            "-o",
            out.to_str().unwrap(),
            "--base",
            arch.to_str().unwrap(),
        ],
        &stdin,
        1,
    );
    assert_eq!(r.len(), cases.len());
    for (rec, (name, kind)) in r.iter().zip(cases) {
        let got = rec["error"]["kind"].as_str().unwrap_or("none");
        assert!(kind.split('|').any(|k| k == got), "{name}: {rec}");
    }
    // Nothing outside the output directory, nothing inside it either.
    for p in [
        dir.path().join("evil.jpg"),
        arch.join("evil.jpg"),
        arch.join("abs-evil.jpg"),
        dir.path().join("link.jpg"),
    ] {
        assert!(!p.exists(), "{} written", p.display());
    }
    let left: Vec<_> = std::fs::read_dir(&out)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in the output directory: {left:?}");
    // The intact archive unpacks.
    let r = records(
        &[
            "unpack",
            "-o",
            out.to_str().unwrap(),
            arch.join("whole.cbz").to_str().unwrap(),
        ],
        "",
        0,
    );
    assert_eq!(r[0]["cbz-stream"]["entries"], 39);
}

#[test]
fn limits_from_options_and_disk() {
    let dir = testkit::tempdir();
    for i in 0..10 {
        put(&dir.path().join("p"), &format!("{i}.jpg"), &jpeg(32, 32, i));
    }
    let a = dir.path().join("a.cbz");
    records(
        &[
            "pack",
            dir.path().join("p").to_str().unwrap(),
            "-o",
            a.to_str().unwrap(),
        ],
        "",
        0,
    );
    let o = dir.path().join("o");
    for args in [
        vec!["--max-entries", "5"],
        vec!["--max-total-size", "2000"],
        vec!["--max-entry-size", "100"],
    ] {
        let mut v = vec!["unpack", "-o", o.to_str().unwrap(), a.to_str().unwrap()];
        v.extend(args.iter());
        let r = records(&v, "", 1);
        assert_eq!(r[0]["error"]["kind"], "hostile", "{args:?}: {}", r[0]);
    }
    assert!(!o.exists() || std::fs::read_dir(&o).unwrap().next().is_none());
    // Far more than the free disk space: refused before writing.
    let sparse = dir.path().join("big.cbz");
    let py = testkit::python(&["zipfile"]);
    if let Some(py) = py {
        // A deflated entry of 2^42 zero bytes cannot be written by zipfile quickly, so
        // forge its declared size: a stored 1-byte entry whose sizes say 16 TiB would be
        // 'impossible'; a deflated one within DEFLATE's ratio is not. Use a real 40 MiB
        // deflated entry and a limit below it.
        testkit::run_python(&py, "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w', zipfile.ZIP_DEFLATED) as z: z.writestr('001.jpg', bytes(40 << 20))", &[sparse.to_str().unwrap()]);
        let r = records(
            &[
                "unpack",
                "-o",
                o.to_str().unwrap(),
                "--max-ratio",
                "100000",
                "--max-total-size",
                "30MiB",
                sparse.to_str().unwrap(),
            ],
            "",
            1,
        );
        assert!(
            r[0]["error"]["message"]
                .as_str()
                .unwrap()
                .contains("free disk"),
            "{}",
            r[0]
        );
    }
}
