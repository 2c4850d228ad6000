//! strip-convert end to end: real TIFFs in, JP2 out, checked by code no one here wrote
//! (jpylyzer for the file format, the `jpeg2k` crate and `opj_decompress` for the pixels,
//! tifffile for the source samples).

use std::path::{Path, PathBuf};

mod common;
use common::*;

#[test]
fn lossless_sample_tiffs_round_trip_bit_exact() {
    // imagecodecs: tifffile needs it for LZW, PackBits and Deflate.
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let files = [
        "tiff/minisblack-1c-8b.tiff",
        "tiff/minisblack-1c-16b.tiff",
        "tiff/minisblack-2c-8b-alpha.tiff",
        "tiff/rgb-3c-8b.tiff",
        "tiff/rgb-3c-16b.tiff",
        "tiff/planar-rgb-u8.tif",
        "tiff/tiled-rgb-u8.tif",
        "tiff/tiled-rect-rgb-u8.tif",
        "tiff/issue_69_packbits.tiff",
        "tiff/kodim07-lzw.tif",
        "tiff/BigTIFF.tif",
        "tiff/fax4.tiff",
        "tiff/palette-1c-8b.tiff",
        "tiff/12bit.cropped.tiff",
    ];
    let paths: Vec<String> = files
        .iter()
        .map(|f| testkit::data(f).to_string_lossy().into_owned())
        .collect();
    let mut args = vec!["-o", dir.path().to_str().unwrap(), "--tile", "128"];
    args.extend(paths.iter().map(String::as_str));
    let (records, code) = convert(&args);
    assert_eq!(code, 0, "{records:#?}");
    assert_eq!(records.len(), files.len());
    for (r, src) in records.iter().zip(&paths) {
        assert_eq!(section(r)["status"], "ok", "{r}");
        let jp2 = output_of(r);
        let (want, shape) = tiff_samples(&py, Path::new(src), 0);
        let (got, got_shape) = jp2_samples(&jp2);
        assert_eq!(shape, got_shape, "{src}");
        assert!(want == got, "{src}: jpeg2k decode differs from tifffile");
        if let Some((got, got_shape)) = opj_samples(&py, &jp2) {
            assert_eq!(shape, got_shape, "{src}");
            assert!(want == got, "{src}: opj_decompress differs from tifffile");
        }
        if let Some((valid, xml)) = jpylyzer(&jp2) {
            assert!(valid, "{src}: jpylyzer says invalid:\n{xml}");
            assert_eq!(
                xml_value(&xml, "transformation").as_deref(),
                Some("5-3 reversible")
            );
            // The default code-block style: bypass, and the record says so.
            assert_eq!(xml_value(&xml, "codingBypass").as_deref(), Some("yes"));
            assert_eq!(section(r)["bypass"], true);
        }
    }
}

/// One uncompressed strip holding the whole image (36 MB) converts under a 32 MiB budget:
/// its rows are read from the file a few at a time, never the strip whole; and a
/// WhiteIsZero 16-bit image on the same direct path comes out inverted, as JP2 needs.
#[test]
fn giant_single_strip_and_white_is_zero_read_directly() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let big = dir.path().join("one-strip.tif");
    let white = dir.path().join("white16.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:3000, 0:4000]
a = np.stack([(x + y) % 256, (x // 3) % 256, (x * y // 7) % 256], -1).astype(np.uint8)
tifffile.imwrite(sys.argv[1], a, rowsperstrip=3000)
g = ((x * 13 + y * 5) % 65536)[:300, :500].astype(np.uint16)
tifffile.imwrite(sys.argv[2], g, photometric='miniswhite', rowsperstrip=7, byteorder='>')
"#,
        &[big.to_str().unwrap(), white.to_str().unwrap()],
    );
    let (records, code) = convert(&[
        big.to_str().unwrap(),
        white.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--memory-limit",
        "32MiB",
    ]);
    assert_eq!(code, 0, "{records:#?}");
    let s = section(&records[0]);
    assert!(s["peak_rss"].as_u64().unwrap() <= 32 << 20, "{s}");
    for (r, src) in records.iter().zip([&big, &white]) {
        let (want, shape) = tiff_samples(&py, src, 0);
        let (got, got_shape) = jp2_samples(&output_of(r));
        assert_eq!(shape, got_shape);
        assert!(
            want == got,
            "{}: decode differs from tifffile",
            src.display()
        );
    }
}

/// A generated image larger than one tile row, strips of a few rows and Deflate: the
/// splice of many tiles, the band edges and the predictor all on the path.
#[test]
fn many_tiles_with_markers_decode_exactly_and_validate() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "imagecodecs"]) else {
        return;
    };
    let src = dir.path().join("grad.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
rng = np.random.default_rng(7)
y, x = np.mgrid[0:333, 0:517]
a = np.stack([(x + y) % 256, (x * 3) % 256, rng.integers(0, 256, x.shape), (y * 5) % 256], -1)
tifffile.imwrite(sys.argv[1], a.astype(np.uint8), rowsperstrip=5, compression='zlib',
                 predictor=2, extrasamples=['unassalpha'], photometric='rgb',
                 resolution=(300, 300), resolutionunit='INCH')
"#,
        &[src.to_str().unwrap()],
    );
    let (records, code) = convert(&[
        src.to_str().unwrap(),
        "--tile",
        "64x48",
        "--sop",
        "--eph",
        "--plt",
        "--tlm",
        "--tileparts",
        "R",
        "--order",
        "LRCP",
        "--levels",
        "4",
        "--verify",
    ]);
    assert_eq!(code, 0, "{records:#?}");
    let s = section(&records[0]);
    assert_eq!(s["verification"]["status"], "ok");
    assert_eq!(s["verification"]["differing_samples"], 0);
    let jp2 = output_of(&records[0]);
    let (want, shape) = tiff_samples(&py, &src, 0);
    let (got, got_shape) = jp2_samples(&jp2);
    assert_eq!(shape, got_shape);
    assert!(want == got, "jpeg2k decode differs");
    if let Some((valid, xml)) = jpylyzer(&jp2) {
        assert!(valid, "{xml}");
        assert_eq!(xml_value(&xml, "xTsiz").as_deref(), Some("64"));
        assert_eq!(xml_value(&xml, "yTsiz").as_deref(), Some("48"));
        assert_eq!(xml_value(&xml, "levels").as_deref(), Some("4"));
        assert_eq!(xml_value(&xml, "order").as_deref(), Some("LRCP"));
        assert_eq!(xml_value(&xml, "sop").as_deref(), Some("yes"));
        assert_eq!(xml_value(&xml, "eph").as_deref(), Some("yes"));
        assert!(xml.contains("<tlm"), "no TLM marker reported");
        assert!(
            xml.contains("<pltCount>1</pltCount>"),
            "no PLT marker reported"
        );
        // 300 dpi = 11811.02 pixels per metre, as the capture resolution box.
        let vr: f64 = xml_value(&xml, "vRescInPixelsPerMeter")
            .unwrap()
            .parse()
            .unwrap();
        assert!((vr - 11811.02).abs() < 0.1, "{vr}");
        assert!(
            xml.contains("<cTyp>opacity</cTyp>"),
            "no channel definition for alpha"
        );
    }
}

#[test]
fn every_profile_is_valid_and_says_what_it_asked() {
    let Some(_) = testkit::python(&["jpylyzer"]) else {
        return;
    };
    let src = testkit::data("tiff/kodim02-lzw.tif");
    for (profile, order, layers, transformation) in [
        ("bnf", "RPCL", "10", "9-7 irreversible"),
        ("kb-master", "RPCL", "11", "5-3 reversible"),
        ("kb-access", "RPCL", "8", "9-7 irreversible"),
        ("loc-ndnp", "RLCP", "25", "9-7 irreversible"),
    ] {
        let dir = testkit::tempdir();
        let (records, code) = convert(&[
            src.to_str().unwrap(),
            "-o",
            dir.path().to_str().unwrap(),
            "--profile",
            profile,
            "--is-part-of",
            "Collection & test",
            "--verify",
            "--min-psnr",
            "20",
            "--min-ssim",
            "0.5",
        ]);
        assert_eq!(code, 0, "{profile}: {records:#?}");
        let s = section(&records[0]);
        assert_eq!(s["profile"], profile);
        assert_eq!(s["verification"]["status"], "ok", "{profile}: {s}");
        let (valid, xml) = jpylyzer(&output_of(&records[0])).unwrap();
        assert!(valid, "{profile}: {xml}");
        assert_eq!(
            xml_value(&xml, "order").as_deref(),
            Some(order),
            "{profile}"
        );
        assert_eq!(
            xml_value(&xml, "layers").as_deref(),
            Some(layers),
            "{profile}"
        );
        assert_eq!(
            xml_value(&xml, "transformation").as_deref(),
            Some(transformation),
            "{profile}"
        );
        assert_eq!(xml_value(&xml, "codeBlockWidth").as_deref(), Some("64"));
        // 768x512 with 1024 tiles: levels are capped by the image's smaller side.
        assert_eq!(
            s["levels"].as_u64(),
            xml_value(&xml, "levels").and_then(|l| l.parse().ok())
        );
        if profile == "bnf" {
            // A photograph reaches 1:4: no lossless fallback.
            assert!(s["fallback"].is_null(), "{s}");
            assert_eq!(xml_value(&xml, "sop").as_deref(), Some("yes"));
            assert!(xml.contains("<pltCount>1</pltCount>"));
            let file = std::fs::read(output_of(&records[0])).unwrap();
            let text = String::from_utf8_lossy(&file);
            assert!(text.contains("<dcterms:isPartOf>Collection &amp; test</dcterms:isPartOf>"));
        }
        // Profiles keep their own code-block style: only loc-ndnp asks for bypass.
        assert_eq!(
            xml_value(&xml, "codingBypass").as_deref(),
            Some(if profile == "loc-ndnp" { "yes" } else { "no" }),
            "{profile}"
        );
        if profile.starts_with("kb") {
            assert_eq!(
                xml_value(&xml, "segmentationSymbols").as_deref(),
                Some("yes")
            );
        }
    }
}

#[test]
fn bnf_falls_back_to_lossless_when_the_ratio_cannot_be_reached() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "jpylyzer"]) else {
        return;
    };
    let src = dir.path().join("flat.tif");
    // A smooth gradient: lossless JPEG 2000 packs it far tighter than 1:4, so the 9/7
    // codestream runs out of coding passes before it reaches 1:4.
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
y, x = np.mgrid[0:600, 0:900]
a = np.stack([x // 8, y // 8, (x + y) // 16], -1).astype(np.uint8)
tifffile.imwrite(sys.argv[1], a, rowsperstrip=64)
"#,
        &[src.to_str().unwrap()],
    );
    let (records, code) = convert(&[
        src.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--profile",
        "bnf",
        "--verify",
    ]);
    assert_eq!(code, 0, "{records:#?}");
    let s = section(&records[0]);
    assert_eq!(s["fallback"], "lossless", "{s}");
    assert_eq!(s["reversible"], true, "{s}");
    assert!(s["note"].as_str().unwrap().contains("1:4"), "{s}");
    // Lossless verification compares exactly; any difference fails the record.
    assert_eq!(s["verification"]["status"], "ok", "{s}");
    assert!(s["ratio"].as_f64().unwrap() > 4.0, "{s}");
    let (valid, xml) = jpylyzer(&output_of(&records[0])).unwrap();
    assert!(valid, "{xml}");
    assert_eq!(
        xml_value(&xml, "transformation").as_deref(),
        Some("5-3 reversible")
    );
    // The profile's other parameters stay.
    assert_eq!(xml_value(&xml, "layers").as_deref(), Some("10"));
    assert_eq!(xml_value(&xml, "order").as_deref(), Some("RPCL"));
    let (expect, _) = tiff_samples(&py, &src, 0);
    let (got, _) = jp2_samples(&output_of(&records[0]));
    assert!(got == expect, "lossless fallback is not bit-exact");
}

#[test]
fn multipage_writes_one_file_per_page() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let src = dir.path().join("pages.tif");
    std::fs::copy(testkit::data("images/multipage.tif"), &src).unwrap();
    let (records, code) = convert(&[src.to_str().unwrap()]);
    assert_eq!(code, 0, "{records:#?}");
    assert_eq!(records.len(), 2);
    for (i, r) in records.iter().enumerate() {
        assert_eq!(section(r)["page"], i + 1);
        let jp2 = output_of(r);
        assert!(jp2.ends_with(format!("pages_page_{}.jp2", i + 1)));
        let (want, _) = tiff_samples(&py, &src, i);
        assert!(want == jp2_samples(&jp2).0, "page {}", i + 1);
    }
    // Existing outputs are skipped; --page picks one.
    let (records, code) = convert(&[src.to_str().unwrap(), "--page", "2"]);
    assert_eq!(code, 0);
    assert_eq!(records.len(), 1);
    assert_eq!(section(&records[0])["status"], "skipped");
}

#[test]
fn icc_profile_is_carried_when_restricted() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy", "PIL"]) else {
        return;
    };
    let src = dir.path().join("icc.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
from PIL import ImageCms
icc = ImageCms.ImageCmsProfile(ImageCms.createProfile('sRGB')).tobytes()
a = (np.arange(40 * 30 * 3) % 251).astype(np.uint8).reshape(30, 40, 3)
tifffile.imwrite(sys.argv[1], a, photometric='rgb', extratags=[(34675, 7, len(icc), icc, True)])
open(sys.argv[1] + '.icc', 'wb').write(icc)
"#,
        &[src.to_str().unwrap()],
    );
    let (records, code) = convert(&[src.to_str().unwrap()]);
    assert_eq!(code, 0, "{records:#?}");
    let jp2 = output_of(&records[0]);
    let icc = std::fs::read(dir.path().join("icc.tif.icc")).unwrap();
    let file = std::fs::read(&jp2).unwrap();
    assert!(
        file.windows(icc.len()).any(|w| w == icc),
        "ICC profile not copied into colr"
    );
    if let Some((valid, xml)) = jpylyzer(&jp2) {
        assert!(valid, "{xml}");
        assert_eq!(xml_value(&xml, "meth").as_deref(), Some("Restricted ICC"));
    }
}

#[test]
fn refused_and_corrupt_inputs_are_error_records_without_output() {
    let dir = testkit::tempdir();
    let mut inputs = vec![
        testkit::data("tiff/cmyk-4c-8b.tiff"),
        testkit::data("tiff/predictor-3-gray-f32.tif"),
        testkit::data("tiff/int16_zstd.tif"),
    ];
    for sub in ["divide_by_zero", "inf_loop", "oom_crash"] {
        let d = testkit::data(&format!("tiff/fuzz/{sub}"));
        let mut files: Vec<PathBuf> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        inputs.extend(files);
    }
    let out_dir = dir.path().join("out");
    let cmd = tool().arg("-o").arg(&out_dir).args(&inputs);
    let started = std::time::Instant::now();
    let out = cmd.run();
    let records = testkit::ndjson(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{records:#?}");
    assert_eq!(records.len(), inputs.len());
    let mut fuzz_ok = 0;
    for r in &records {
        if r.get("error").is_none() {
            // A fuzz file the decoder reads in full is fine, if its output is valid.
            assert_eq!(section(r)["status"], "ok", "{r}");
            fuzz_ok += 1;
        }
    }
    assert!(fuzz_ok < inputs.len() / 2, "most broken inputs must fail");
    assert_eq!(records[0]["error"]["kind"], "unsupported");
    // No partial or temporary file left behind for the failures.
    let mut left = Vec::new();
    if out_dir.exists() {
        for e in std::fs::read_dir(&out_dir).unwrap() {
            left.push(e.unwrap().file_name().to_string_lossy().into_owned());
        }
    }
    assert!(
        left.iter()
            .all(|n| n.ends_with(".jp2") && !n.starts_with('.')),
        "{left:?}"
    );
    assert_eq!(left.len(), fuzz_ok, "{left:?}");
    // Generous bound: a hang would be minutes.
    assert!(started.elapsed().as_secs() < 120);
}

#[test]
fn impossible_budget_exits_3() {
    let src = testkit::data("tiff/kodim07-lzw.tif");
    let dir = testkit::tempdir();
    let (records, code) = convert(&[
        src.to_str().unwrap(),
        "-o",
        dir.path().to_str().unwrap(),
        "--memory-limit",
        "1MiB",
    ]);
    assert_eq!(code, 3, "{records:#?}");
    assert_eq!(records[0]["error"]["kind"], "budget");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn killed_conversion_leaves_nothing_under_the_final_name() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["tifffile", "numpy"]) else {
        return;
    };
    let src = dir.path().join("big.tif");
    testkit::run_python(
        &py,
        r#"
import sys, numpy as np, tifffile
rng = np.random.default_rng(3)
tifffile.imwrite(sys.argv[1], rng.integers(0, 256, (3000, 3000, 3), dtype=np.uint8), rowsperstrip=16)
"#,
        &[src.to_str().unwrap()],
    );
    let mut child = tool()
        .arg(&src)
        .args(["--tile", "256", "-j", "1"])
        .spawn_piped();
    // Wait for the temporary file to appear, then kill mid-way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let tmp = std::fs::read_dir(dir.path())
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().ends_with(".part"));
        if tmp || std::time::Instant::now() > deadline {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.path().join("big.jp2").exists());
}

#[test]
fn pipeline_mem_estimate_chunk_plan_strip_convert() {
    let dir = testkit::tempdir();
    let src = dir.path().join("k.tif");
    std::fs::copy(testkit::data("tiff/kodim02-lzw.tif"), &src).unwrap();
    let conv = testkit::pipe([
        testkit::tool("mem-estimate").arg(&src),
        testkit::tool("chunk-plan").args(["--memory-limit", "256MiB", "--for", "strip-convert"]),
        tool().arg("--verify"),
    ]);
    let records = conv.records();
    assert_eq!(conv.status.code(), Some(0), "{records:#?}");
    let r = &records[0];
    // Upstream sections pass through; ours is added.
    assert!(
        r.get("estimate").is_some() && r.get("plan").is_some(),
        "{r}"
    );
    assert_eq!(section(r)["status"], "ok");
    assert_eq!(section(r)["verification"]["status"], "ok");
    assert!(section(r)["peak_rss"].as_u64().unwrap() > 0);
    // Without --memory-limit, strip-convert keeps to the budget chunk-plan planned for.
    assert_eq!(section(r)["budget_bytes"].as_u64(), Some(256 << 20), "{r}");
}
