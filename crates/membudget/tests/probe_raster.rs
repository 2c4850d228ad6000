//! Raster probes checked against code no one here wrote: every sample TIFF page against
//! Python's tifffile, PNG and JPEG against Pillow, and JPEG 2000 files made by
//! `opj_compress` / `grk_compress` with known parameters (cross-checked with jpylyzer).

use membudget::probe::{self, jp2::Jp2Info, Detail, Layout, Probe};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn probe(path: &Path) -> Probe {
    probe::probe_path(path).unwrap_or_else(|e| panic!("{}: {} ({})", path.display(), e, e.kind))
}

fn sample_tiffs() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testkit::data("tiff"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "tif" || x == "tiff"))
        .collect();
    files.push(testkit::data("images/multipage.tif"));
    files.push(testkit::data("images/multipage_rgb.tif"));
    files.sort();
    files
}

const TIFFFILE_PAGES: &str = r#"
import json, sys, tifffile
out = {}
for path in sys.argv[1:]:
    with tifffile.TiffFile(path) as t:
        pages = []
        for p in t.pages:
            tags = p.tags
            def rational(name):
                tag = tags.get(name)
                if tag is None:
                    return None
                n, d = tag.value
                return n / d if d else None
            icc = tags.get(34675)
            pages.append({
                "width": p.imagewidth, "height": p.imagelength,
                "samples": p.samplesperpixel, "bits": p.bitspersample,
                "sample_format": int(p.sampleformat), "photometric": tifffile.PHOTOMETRIC(int(p.photometric)).name.lower(),
                "compression": int(p.compression), "planar": tifffile.PLANARCONFIG(int(p.planarconfig)).name.lower(),
                "predictor": int(p.predictor),
                "tiled": p.is_tiled, "tile": [p.tilewidth, p.tilelength],
                "rows_per_strip": p.rowsperstrip, "chunks": len(p.dataoffsets),
                "extra_samples": [tifffile.EXTRASAMPLE(int(e)).name.lower() for e in p.extrasamples],
                "icc_bytes": icc.count if icc is not None else None,
                "xres": rational("XResolution"), "yres": rational("YResolution"),
            })
        out[path] = {"bigtiff": t.is_bigtiff, "pages": pages}
print(json.dumps(out))
"#;

#[test]
fn tiff_pages_match_tifffile() {
    let Some(py) = testkit::python(&["tifffile"]) else {
        return;
    };
    let files = sample_tiffs();
    assert!(files.len() >= 20, "sample TIFFs missing");
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let expected: Value = serde_json::from_str(&testkit::run_python(&py, TIFFFILE_PAGES, &args))
        .expect("tifffile JSON");

    for path in &files {
        let want = &expected[path.to_str().unwrap()];
        let got = probe(path);
        let Detail::Tiff(info) = &got.detail else {
            panic!("{}: not a TIFF detail", path.display())
        };
        let name = path.file_name().unwrap().to_string_lossy();
        assert_eq!(info.bigtiff, want["bigtiff"].as_bool().unwrap(), "{name}");
        let want_pages = want["pages"].as_array().unwrap();
        assert_eq!(info.pages.len(), want_pages.len(), "{name}: page count");
        let image = got.image.as_ref().unwrap();
        assert_eq!(image.pages, want_pages.len() as u64, "{name}");

        for (i, (p, w)) in info.pages.iter().zip(want_pages).enumerate() {
            let ctx = format!("{name} page {i}");
            let u = |k: &str| w[k].as_u64().unwrap_or_else(|| panic!("{ctx}: {k}"));
            assert_eq!((p.width, p.height), (u("width"), u("height")), "{ctx}");
            assert_eq!(u64::from(p.samples), u("samples"), "{ctx}");
            assert_eq!(u64::from(p.bits), u("bits"), "{ctx}");
            let sf = match p.sample_format.as_str() {
                "uint" => 1,
                "int" => 2,
                "float" => 3,
                "void" => 4,
                "complex_int" => 5,
                "complex_float" => 6,
                other => panic!("{ctx}: sample format {other}"),
            };
            assert_eq!(sf, u("sample_format"), "{ctx}");
            assert_eq!(p.photometric.as_deref(), w["photometric"].as_str(), "{ctx}");
            assert_eq!(u64::from(p.compression_code), u("compression"), "{ctx}");
            assert_eq!(p.planar, w["planar"].as_str().unwrap(), "{ctx}");
            let predictor = match p.predictor.as_str() {
                "none" => 1,
                "horizontal" => 2,
                "floating_point" => 3,
                other => panic!("{ctx}: predictor {other}"),
            };
            assert_eq!(predictor, u("predictor"), "{ctx}");
            assert_eq!(p.chunks, u("chunks"), "{ctx}: strip/tile count");
            if w["tiled"].as_bool().unwrap() {
                assert_eq!(p.layout, Layout::Tiles, "{ctx}");
                let tile = [p.tile_width.unwrap(), p.tile_length.unwrap()];
                assert_eq!(tile[0], w["tile"][0].as_u64().unwrap(), "{ctx}");
                assert_eq!(tile[1], w["tile"][1].as_u64().unwrap(), "{ctx}");
                assert_eq!(p.rows_per_strip, None, "{ctx}");
            } else {
                assert_eq!(p.layout, Layout::Strips, "{ctx}");
                assert_eq!(p.rows_per_strip, Some(u("rows_per_strip")), "{ctx}");
            }
            let extra: Vec<String> = w["extra_samples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| match e.as_str().unwrap() {
                    "assocalpha" => "assoc_alpha".to_string(),
                    "unassalpha" => "unassoc_alpha".to_string(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(p.extra_samples, extra, "{ctx}");
            assert_eq!(p.icc_bytes, w["icc_bytes"].as_u64(), "{ctx}");
            let res = p.resolution.as_ref();
            assert_eq!(
                res.and_then(|r| r.x),
                w["xres"].as_f64(),
                "{ctx}: XResolution"
            );
            assert_eq!(
                res.and_then(|r| r.y),
                w["yres"].as_f64(),
                "{ctx}: YResolution"
            );
        }

        // The summary is the first page.
        let p = &info.pages[0];
        assert_eq!((image.width, image.height), (p.width, p.height), "{name}");
        assert_eq!((image.bands, image.bits), (p.samples, p.bits), "{name}");
        assert_eq!(image.compressed, p.compression != "none", "{name}");
        let block = match p.layout {
            Layout::Strips => [p.width, p.rows_per_strip.unwrap()],
            Layout::Tiles => [p.tile_width.unwrap(), p.tile_length.unwrap()],
        };
        assert_eq!(image.block, block, "{name}");
    }
}

#[test]
fn tiff_names_for_known_samples() {
    // Spot checks of the names, which tifffile spells differently.
    let page = |rel: &str| {
        let Detail::Tiff(info) = probe(&testkit::data(rel)).detail else {
            panic!("{rel}: not TIFF")
        };
        info.pages[0].clone()
    };
    assert_eq!(page("tiff/fax4.tiff").compression, "ccitt_fax4");
    assert_eq!(page("tiff/int16_zstd.tif").compression, "zstd");
    assert_eq!(page("tiff/kodim02-lzw.tif").compression, "lzw");
    assert_eq!(page("tiff/issue_69_packbits.tiff").compression, "packbits");
    assert_eq!(
        page("tiff/tiled-jpeg-ycbcr.tif").photometric.as_deref(),
        Some("ycbcr")
    );
    assert_eq!(page("tiff/tiled-jpeg-ycbcr.tif").compression, "jpeg");
    assert_eq!(
        page("tiff/cmyk-4c-8b.tiff").photometric.as_deref(),
        Some("separated")
    );
    assert_eq!(
        page("tiff/palette-1c-8b.tiff").photometric.as_deref(),
        Some("palette")
    );
    let f = page("tiff/predictor-3-gray-f32.tif");
    assert_eq!(
        (f.sample_format.as_str(), f.predictor.as_str()),
        ("float", "floating_point")
    );
    // No RowsPerStrip: one strip of the full height.
    let p = page("tiff/no_rows_per_strip.tiff");
    assert_eq!((p.rows_per_strip, p.chunks), (Some(p.height), 1));
    let big = probe(&testkit::data("tiff/BigTIFF.tif"));
    let Detail::Tiff(info) = big.detail else {
        panic!()
    };
    assert!(info.bigtiff);
    assert_eq!(
        big.bytes,
        std::fs::metadata(testkit::data("tiff/BigTIFF.tif"))
            .unwrap()
            .len()
    );
}

const PIL_INFO: &str = r#"
import json, sys
from PIL import Image
out = {}
for path in sys.argv[1:]:
    with Image.open(path) as im:
        # Pillow keeps the stored PNG bit depth only in the raw mode ("P;1", "I;16B").
        raw = im.png.im_rawmode if im.format == "PNG" else im.mode
        suffix = raw.split(";")[1] if ";" in raw else ""
        digits = "".join(ch for ch in suffix if ch.isdigit())
        bits = int(digits) if digits else (1 if raw == "1" else 8)
        out[path] = {
            "format": im.format, "width": im.width, "height": im.height,
            "mode": im.mode, "bands": len(im.getbands()), "bits": getattr(im, "bits", bits),
            "interlaced": bool(im.info.get("interlace", 0)),
            "progressive": bool(im.info.get("progressive", 0)),
            "icc_bytes": len(im.info["icc_profile"]) if im.info.get("icc_profile") else None,
            "layers": getattr(im, "layers", None),
        }
print(json.dumps(out))
"#;

/// PNG variants Pillow can write (16-bit gray, palette with transparency, gray+alpha) and a
/// progressive JPEG, so the probes see more than the three sample files.
const PIL_WRITE: &str = r#"
import sys
from PIL import Image
d = sys.argv[1]
Image.new("I;16", (33, 17), 1000).save(d + "/gray16.png")
Image.new("P", (40, 30), 3).save(d + "/palette.png", transparency=3)
Image.new("LA", (21, 9), (10, 20)).save(d + "/gray_alpha.png")
Image.new("RGBA", (5, 300), (1, 2, 3, 4)).save(d + "/rgba.png")
Image.new("RGB", (123, 45), (200, 10, 10)).save(d + "/progressive.jpg", progressive=True)
Image.new("L", (64, 48), 77).save(d + "/gray.jpg")
Image.new("CMYK", (16, 16), (1, 2, 3, 4)).save(d + "/cmyk.jpg")
"#;

#[test]
fn png_and_jpeg_match_pillow() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["PIL"]) else {
        return;
    };
    testkit::run_python(&py, PIL_WRITE, &[dir.path().to_str().unwrap()]);
    let mut files: Vec<PathBuf> = ["astronaut.png", "page.png", "hubble_deep_field.jpg"]
        .iter()
        .map(|f| testkit::data(&format!("images/{f}")))
        .collect();
    for f in ["gray16.png", "palette.png", "gray_alpha.png", "rgba.png"] {
        files.push(dir.path().join(f));
    }
    for f in ["progressive.jpg", "gray.jpg", "cmyk.jpg"] {
        files.push(dir.path().join(f));
    }
    let args: Vec<&str> = files.iter().map(|p| p.to_str().unwrap()).collect();
    let expected: Value =
        serde_json::from_str(&testkit::run_python(&py, PIL_INFO, &args)).expect("PIL JSON");

    for path in &files {
        let w = &expected[path.to_str().unwrap()];
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let got = probe(path);
        let image = got.image.as_ref().unwrap();
        assert_eq!(image.width, w["width"].as_u64().unwrap(), "{name}");
        assert_eq!(image.height, w["height"].as_u64().unwrap(), "{name}");
        assert_eq!(
            u64::from(image.bands),
            w["bands"].as_u64().unwrap(),
            "{name}"
        );
        assert_eq!(u64::from(image.bits), w["bits"].as_u64().unwrap(), "{name}");
        assert_eq!(image.layout, Layout::Strips, "{name}");
        match &got.detail {
            Detail::Png(p) => {
                assert_eq!(w["format"], "PNG", "{name}");
                let mode = match p.color_type.as_str() {
                    "gray" if p.bit_depth == 16 => "I;16",
                    "gray" if p.bit_depth == 1 => "1",
                    "gray" => "L",
                    "gray_alpha" => "LA",
                    "rgb" => "RGB",
                    "rgba" => "RGBA",
                    "palette" => "P",
                    other => panic!("{name}: {other}"),
                };
                assert_eq!(mode, w["mode"].as_str().unwrap(), "{name}");
                assert_eq!(p.interlaced, w["interlaced"].as_bool().unwrap(), "{name}");
                assert_eq!(p.icc_bytes, w["icc_bytes"].as_u64(), "{name}");
                assert_eq!(p.transparency, name == "palette.png", "{name}");
                assert_eq!(image.block, [image.width, 1], "{name}");
            }
            Detail::Jpeg(j) => {
                assert_eq!(w["format"], "JPEG", "{name}");
                assert_eq!(
                    u64::from(j.components),
                    w["layers"].as_u64().unwrap(),
                    "{name}"
                );
                assert_eq!(j.progressive, w["progressive"].as_bool().unwrap(), "{name}");
                assert_eq!(j.icc_bytes, w["icc_bytes"].as_u64(), "{name}");
                let rows = if j.progressive { image.height } else { 1 };
                assert_eq!(image.block, [image.width, rows], "{name}");
            }
            other => panic!("{name}: unexpected detail {other:?}"),
        }
    }
}

/// A deterministic 8-bit RGB PPM (or 16-bit gray PGM) for the JPEG 2000 encoders.
fn write_pnm(path: &Path, w: usize, h: usize, rgb: bool) {
    let mut data = if rgb {
        format!("P6\n{w} {h}\n255\n").into_bytes()
    } else {
        format!("P5\n{w} {h}\n65535\n").into_bytes()
    };
    for y in 0..h {
        for x in 0..w {
            if rgb {
                data.extend_from_slice(&[(x * 3 + y) as u8, (x ^ y) as u8, (y * 5) as u8]);
            } else {
                data.extend_from_slice(&((x * 401 + y * 37) as u16).to_be_bytes());
            }
        }
    }
    std::fs::write(path, data).unwrap();
}

/// `Some(path)` of an encoder on PATH, `None` (after saying so) when validators are optional.
fn encoder(name: &str) -> Option<&str> {
    let found = Command::new(name).arg("-h").output().is_ok();
    if !found {
        let why = format!("{name} not installed");
        assert!(!testkit::validators_required(), "{why}");
        eprintln!("skipped: {why}");
        return None;
    }
    Some(name)
}

fn jp2_detail(p: &Probe) -> &Jp2Info {
    match &p.detail {
        Detail::Jp2(info) => info,
        other => panic!("not JPEG 2000: {other:?}"),
    }
}

const JPYLYZER: &str = r#"
import json, sys
from jpylyzer import jpylyzer
out = {}
for path in sys.argv[1:]:
    raw = not path.endswith(".jp2")
    r = jpylyzer.checkOneFile(path, "j2c" if raw else "jp2")
    cs = r.find("properties" if raw else "properties/contiguousCodestreamBox")
    siz, cod = cs.find("siz"), cs.find("cod")
    resc = r.find("properties/jp2HeaderBox/resolutionBox/captureResolutionBox")
    out[path] = {
        "valid": r.findtext("isValid") == "True",
        "width": int(siz.findtext("xsiz")) - int(siz.findtext("xOsiz")),
        "height": int(siz.findtext("ysiz")) - int(siz.findtext("yOsiz")),
        "tiles": int(siz.findtext("numberOfTiles")),
        "tile": [int(siz.findtext("xTsiz")), int(siz.findtext("yTsiz"))],
        "depths": [int(d.text) for d in siz.findall("ssizDepth")],
        "signed": [s.text == "signed" for s in siz.findall("ssizSign")],
        "levels": int(cod.findtext("levels")), "layers": int(cod.findtext("layers")),
        "order": cod.findtext("order"),
        "code_block": [int(cod.findtext("codeBlockWidth")), int(cod.findtext("codeBlockHeight"))],
        "transform": cod.findtext("transformation"),
        "sop": cod.findtext("sop") == "yes", "eph": cod.findtext("eph") == "yes",
        "resc": None if resc is None else [float(resc.findtext("vRescInPixelsPerMeter")),
                                           float(resc.findtext("hRescInPixelsPerMeter"))],
    }
print(json.dumps(out))
"#;

#[test]
fn jpeg2000_parameters_round_trip() {
    let Some(opj) = encoder("opj_compress") else {
        return;
    };
    let dir = testkit::tempdir();
    let rgb = dir.path().join("in.ppm");
    let gray = dir.path().join("in.pgm");
    write_pnm(&rgb, 70, 45, true);
    write_pnm(&gray, 130, 20, false);

    struct Case {
        out: &'static str,
        args: &'static [&'static str],
        input_rgb: bool,
        levels: u8,
        layers: u16,
        order: &'static str,
        block: [u32; 2],
        tile: Option<[u64; 2]>,
        transform: &'static str,
        sop: bool,
        eph: bool,
    }
    let cases = [
        Case {
            out: "a.jp2",
            args: &[
                "-n", "3", "-t", "32,32", "-b", "16,32", "-p", "RPCL", "-SOP", "-EPH", "-r",
                "20,10,1",
            ],
            input_rgb: true,
            levels: 2,
            layers: 3,
            order: "RPCL",
            block: [16, 32],
            tile: Some([32, 32]),
            transform: "5-3",
            sop: true,
            eph: true,
        },
        Case {
            out: "b.jp2",
            args: &["-n", "2", "-I", "-p", "CPRL", "-b", "64,64"],
            input_rgb: false,
            levels: 1,
            layers: 1,
            order: "CPRL",
            block: [64, 64],
            tile: None,
            transform: "9-7",
            sop: false,
            eph: false,
        },
        Case {
            out: "c.j2k",
            args: &[
                "-n",
                "4",
                "-t",
                "64,16",
                "-p",
                "LRCP",
                "-r",
                "40,20,10,5",
                "-EPH",
            ],
            input_rgb: false,
            levels: 3,
            layers: 4,
            order: "LRCP",
            block: [64, 64],
            tile: Some([64, 16]),
            transform: "5-3",
            sop: false,
            eph: true,
        },
    ];
    let mut outputs = Vec::new();
    for c in &cases {
        let out = dir.path().join(c.out);
        let input = if c.input_rgb { &rgb } else { &gray };
        let st = Command::new(opj)
            .arg("-i")
            .arg(input)
            .arg("-o")
            .arg(&out)
            .args(c.args)
            .output()
            .unwrap();
        testkit::check(&st, "opj_compress");

        let got = probe(&out);
        let info = jp2_detail(&got);
        let cs = &info.codestream;
        let ctx = c.out;
        let (w, h, comps, depth) = if c.input_rgb {
            (70, 45, 3, 8)
        } else {
            (130, 20, 1, 16)
        };
        assert_eq!(info.container, c.out.ends_with(".jp2"), "{ctx}");
        assert_eq!(
            (cs.width, cs.height, cs.components.len()),
            (w, h, comps),
            "{ctx}"
        );
        assert!(
            cs.components.iter().all(|k| k.depth == depth && !k.signed),
            "{ctx}"
        );
        assert_eq!((cs.levels, cs.layers), (c.levels, c.layers), "{ctx}");
        assert_eq!(cs.progression, c.order, "{ctx}");
        assert_eq!(cs.code_block, c.block, "{ctx}");
        assert_eq!(cs.transform, c.transform, "{ctx}");
        assert_eq!((cs.sop, cs.eph), (c.sop, c.eph), "{ctx}");
        let tile = c.tile.unwrap_or([w, h]);
        assert_eq!(cs.tile_size, tile, "{ctx}");
        assert_eq!(
            cs.tile_count,
            w.div_ceil(tile[0]) * h.div_ceil(tile[1]),
            "{ctx}"
        );
        let image = got.image.as_ref().unwrap();
        assert_eq!((image.layout, image.block), (Layout::Tiles, tile), "{ctx}");
        assert_eq!(
            (image.bands, image.bits),
            (comps as u32, u32::from(depth)),
            "{ctx}"
        );
        if info.container {
            let colour = info.colour.as_ref().unwrap();
            let want = if c.input_rgb { "srgb" } else { "greyscale" };
            assert_eq!(colour.colourspace.as_deref(), Some(want), "{ctx}");
        }
        outputs.push(out);
    }

    // Capture resolution: grk_compress writes resc boxes (opj_compress cannot).
    if let Some(grk) = encoder("grk_compress") {
        let out = dir.path().join("res.jp2");
        let st = Command::new(grk)
            .arg("-i")
            .arg(&rgb)
            .arg("-o")
            .arg(&out)
            .args(["-Q", "11811.2,5905.5"])
            .output()
            .unwrap();
        testkit::check(&st, "grk_compress");
        let got = probe(&out);
        let [v, h] = jp2_detail(&got).capture_resolution.expect("resc");
        assert!(
            (v - 5905.5).abs() < 0.01 && (h - 11811.2).abs() < 0.01,
            "{v} {h}"
        );
        outputs.push(out);
    }

    // jpylyzer reads the same headers independently.
    let Some(py) = testkit::python(&["jpylyzer"]) else {
        return;
    };
    let args: Vec<&str> = outputs.iter().map(|p| p.to_str().unwrap()).collect();
    let expected: Value =
        serde_json::from_str(&testkit::run_python(&py, JPYLYZER, &args)).expect("jpylyzer JSON");
    for out in &outputs {
        let w = &expected[out.to_str().unwrap()];
        let got = probe(out);
        let info = jp2_detail(&got);
        let cs = &info.codestream;
        let ctx = out.display();
        assert!(
            w["valid"].as_bool().unwrap(),
            "{ctx}: jpylyzer says invalid"
        );
        assert_eq!(cs.width, w["width"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cs.height, w["height"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cs.tile_count, w["tiles"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cs.tile_size[0], w["tile"][0].as_u64().unwrap(), "{ctx}");
        assert_eq!(cs.tile_size[1], w["tile"][1].as_u64().unwrap(), "{ctx}");
        let depths: Vec<u64> = cs.components.iter().map(|c| u64::from(c.depth)).collect();
        let want: Vec<u64> = w["depths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap())
            .collect();
        assert_eq!(depths, want, "{ctx}");
        assert_eq!(u64::from(cs.levels), w["levels"].as_u64().unwrap(), "{ctx}");
        assert_eq!(u64::from(cs.layers), w["layers"].as_u64().unwrap(), "{ctx}");
        assert_eq!(cs.progression, w["order"].as_str().unwrap(), "{ctx}");
        assert_eq!(
            u64::from(cs.code_block[0]),
            w["code_block"][0].as_u64().unwrap(),
            "{ctx}"
        );
        assert_eq!(
            u64::from(cs.code_block[1]),
            w["code_block"][1].as_u64().unwrap(),
            "{ctx}"
        );
        assert!(
            w["transform"].as_str().unwrap().starts_with(&cs.transform),
            "{ctx}"
        );
        assert_eq!(cs.sop, w["sop"].as_bool().unwrap(), "{ctx}");
        assert_eq!(cs.eph, w["eph"].as_bool().unwrap(), "{ctx}");
        if let Some(resc) = w["resc"].as_array() {
            let [v, h] = info.capture_resolution.expect("resc");
            assert!((v - resc[0].as_f64().unwrap()).abs() < 0.01, "{ctx}");
            assert!((h - resc[1].as_f64().unwrap()).abs() < 0.01, "{ctx}");
        } else {
            assert_eq!(info.capture_resolution, None, "{ctx}");
        }
    }
}
