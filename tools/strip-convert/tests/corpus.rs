//! The corpus of real TIFFs (`tests/data/tiff` and `tests/data/tiff/corpus`, from libtiff,
//! image-tiff and Pillow's test images): every file converts or is refused for a reason
//! the man page lists; every output equals tifffile's reading through the documented
//! mappings (WhiteIsZero inverted, palette expanded), is valid for jpylyzer, and passes
//! `--verify` against libtiff.

use std::collections::BTreeMap;
use std::path::PathBuf;

mod common;
use common::*;

/// Files refused by design, with the start of the message that says what to do.
const REFUSED: &[(&str, &str)] = &[
    ("cmyk-4c-8b.tiff", "CMYK is refused"),
    (
        "int16_zstd.tif",
        "TIFF compression 50000 (Zstandard) is not supported",
    ),
    (
        "predictor-3-gray-f32.tif",
        "floating-point samples are refused",
    ),
    ("pillow-hopper.Lab.tif", "CIELab is refused"),
    (
        "image-tiff-gradient-1c-32b.tiff",
        "32-bit integer samples are refused",
    ),
];

/// Where tifffile is not the reference, compared with libtiff (`--verify`) only: JPEG
/// (two JPEG decoders differ by a few levels), and a Predictor tag on uncompressed data
/// (libtiff, and so vips, ignore it; tifffile applies it).
const LIBTIFF_ONLY: &[&str] = &[
    "tiled-jpeg-rgb-u8.tif",
    "tiled-jpeg-ycbcr.tif",
    "image-tiff-hpredict-1c-12b.tiff",
];

/// libtiff's own bug-report files, which libtiff decodes only with errors (so `--verify`
/// cannot read them); tifffile agrees with libtiff's reference decoding (its test/refs).
const NO_VERIFY: &[&str] = &[
    "libtiff-testfax3_bug54_1dnoEOL.tif",
    "libtiff-testfax3_bug_513.tiff",
];

fn corpus() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["tiff", "tiff/corpus"] {
        let dir = testkit::data(dir);
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_lowercase();
            if name.ends_with(".tif") || name.ends_with(".tiff") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

fn name(p: &std::path::Path) -> String {
    p.file_name().unwrap().to_str().unwrap().to_string()
}

#[test]
fn real_tiffs_convert_like_tifffile_and_validate() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let files = corpus();
    assert!(files.len() >= 40, "{} files", files.len());
    let dir = testkit::tempdir();
    let out = dir.path().join("out");
    let mut args = vec!["-o".to_string(), out.to_str().unwrap().to_string()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, _) = convert(&args);

    // Refusals: exactly the listed files, each with its message.
    let mut refused = BTreeMap::new();
    let mut by_page: BTreeMap<usize, Vec<(PathBuf, PathBuf)>> = BTreeMap::new();
    for r in &records {
        let path = PathBuf::from(r["path"].as_str().unwrap());
        if let Some(e) = r.get("error") {
            refused.insert(name(&path), e["message"].as_str().unwrap().to_string());
            continue;
        }
        assert_eq!(section(r)["status"], "ok", "{r}");
        let jp2 = output_of(r);
        let stem = jp2.file_stem().unwrap().to_str().unwrap();
        let page = stem
            .rsplit_once("_page_")
            .map_or(0, |(_, n)| n.parse::<usize>().unwrap() - 1);
        by_page.entry(page).or_default().push((path, jp2));
    }
    let want: BTreeMap<String, &str> = REFUSED.iter().map(|(n, m)| (n.to_string(), *m)).collect();
    assert_eq!(
        refused.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "{refused:#?}"
    );
    for (n, m) in &refused {
        assert!(m.starts_with(want[n]), "{n}: {m}");
    }

    // Every output: tifffile's samples through the documented mappings, and jpylyzer.
    let mut compared = 0;
    for (page, pairs) in &by_page {
        let pairs: Vec<_> = pairs
            .iter()
            .filter(|(p, _)| !LIBTIFF_ONLY.contains(&name(p).as_str()))
            .collect();
        let sources: Vec<PathBuf> = pairs.iter().map(|(p, _)| p.clone()).collect();
        let want = tiff_samples_many(&py, &sources, *page);
        for ((src, jp2), (want, shape)) in pairs.iter().zip(want) {
            let (got, got_shape) = jp2_samples(jp2);
            assert_eq!(shape, got_shape, "{} page {page}", src.display());
            let diff = want.iter().zip(&got).filter(|(a, b)| a != b).count();
            assert_eq!(
                diff,
                0,
                "{} page {page}: {diff} samples differ",
                src.display()
            );
            compared += 1;
        }
    }
    let outputs: usize = by_page.values().map(Vec::len).sum();
    assert!(
        compared + 3 >= outputs && compared >= 40,
        "{compared} of {outputs}"
    );
    for jp2 in by_page.values().flatten().map(|(_, j)| j) {
        if let Some((valid, xml)) = jpylyzer(jp2) {
            assert!(valid, "{}: jpylyzer says invalid:\n{xml}", jp2.display());
        }
    }

    // --verify (libtiff) on every converted file libtiff decodes without errors.
    let verified: Vec<String> = records
        .iter()
        .filter(|r| r.get("error").is_none())
        .map(|r| r["path"].as_str().unwrap().to_string())
        .filter(|p| !NO_VERIFY.iter().any(|n| p.ends_with(n)))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let out2 = dir.path().join("verified");
    let mut args = vec![
        "--verify".to_string(),
        "-o".to_string(),
        out2.to_str().unwrap().to_string(),
    ];
    args.extend(verified);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (records, code) = convert(&args);
    assert_eq!(code, 0);
    for r in &records {
        let v = &section(r)["verification"];
        assert_eq!(v["status"], "ok", "{r}");
        assert!(
            v["reference"].as_str().unwrap().starts_with("libtiff"),
            "{r}"
        );
    }
}

/// Signed samples (image-tiff's int8 RGB and int8 gray, Pillow's int16 gray) become signed
/// JP2 components: jpylyzer reports them signed in both the ihdr box and the codestream's
/// SIZ, and OpenJPEG's own decoder (`opj_decompress` to PGX, which keeps the sign) gives
/// back tifffile's values exactly.
#[test]
fn signed_samples_are_signed_jp2_components_opj_decompress_reads_back() {
    let Some(py) = testkit::python(&["tifffile", "numpy", "jpylyzer"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let names = [
        "corpus/image-tiff-int8_rgb.tif",
        "corpus/image-tiff-seq-1c-i8-f8446bbe.tiff",
        "corpus/pillow-16bit.s.tif",
    ];
    for n in names {
        let src = testkit::data(&format!("tiff/{n}"));
        let out = dir.path().join("out");
        let (records, code) = convert(&[
            "--verify",
            "-o",
            out.to_str().unwrap(),
            src.to_str().unwrap(),
        ]);
        assert_eq!(code, 0, "{records:?}");
        let r = &records[0];
        assert_eq!(section(r)["verification"]["status"], "ok", "{r}");
        let jp2 = output_of(r);
        let (valid, xml) = jpylyzer(&jp2).unwrap();
        assert!(valid, "{n}: {xml}");
        assert_eq!(xml_value(&xml, "bPCSign").as_deref(), Some("signed"), "{n}");
        assert_eq!(
            xml_value(&xml, "ssizSign").as_deref(),
            Some("signed"),
            "{n}"
        );
        let pgx = dir.path().join("dec.pgx");
        let st = std::process::Command::new("opj_decompress")
            .args(["-i", jp2.to_str().unwrap(), "-o", pgx.to_str().unwrap()])
            .stdout(std::process::Stdio::null())
            .status();
        match st {
            Ok(s) => assert!(s.success(), "opj_decompress failed on {n}"),
            Err(_) if !testkit::validators_required() => continue,
            Err(e) => panic!("opj_decompress: {e}"),
        }
        let code = r#"
import sys, re, glob, numpy as np, tifffile
src, stem = sys.argv[1], sys.argv[2]
a = tifffile.imread(src)
def pgx(p):
    d = open(p, "rb").read()
    m = re.match(rb"PG (ML|LM) ([+-]?) ?(\d+) (\d+) (\d+)\n", d)
    end, sign, bits, w, h = m.group(1), m.group(2), int(m.group(3)), int(m.group(4)), int(m.group(5))
    assert sign == b"-", "unsigned component"
    t = np.dtype((">" if end == b"ML" else "<") + "i" + str(1 if bits <= 8 else 2))
    return np.frombuffer(d[m.end():], dtype=t).reshape(h, w)
comps = sorted(glob.glob(stem + "_*.pgx"), key=lambda p: int(p.rsplit("_", 1)[1][:-4]))
b = np.stack([pgx(p) for p in comps], -1).reshape(a.shape)
assert a.dtype.kind == "i", a.dtype
assert np.array_equal(a.astype(np.int32), b.astype(np.int32)), "samples differ"
print(a.dtype, a.min(), a.max())
"#;
        let stem = dir.path().join("dec");
        testkit::run_python(&py, code, &[src.to_str().unwrap(), stem.to_str().unwrap()]);
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "pgx") {
                std::fs::remove_file(p).unwrap();
            }
        }
    }
}
