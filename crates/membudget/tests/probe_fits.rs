//! The FITS probe against astropy, HDU by HDU, on every sample FITS file.

use membudget::probe::fits::{FitsInfo, HduKind};
use membudget::probe::{probe_path, Detail, Format, Layout};
use serde_json::Value;
use std::path::PathBuf;

fn samples() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(testkit::data("fits"))
        .expect("read fits dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "fits"))
        .collect();
    files.sort();
    assert!(files.len() >= 7, "expected the shared FITS samples");
    files
}

/// astropy's view of every HDU. Header values are taken before any data is touched
/// (astropy rewrites BITPIX/BZERO in memory once scaled data is loaded); the effective
/// dtype comes from loading the (small) data of image HDUs.
const ASTROPY: &str = r#"
import json, sys
import numpy as np
from astropy.io import fits
for path in sys.argv[1:]:
    hdus = []
    with fits.open(path) as hdul:
        for i, hdu in enumerate(hdul):
            comp = isinstance(hdu, fits.CompImageHDU)
            raw = hdu._bintable.header if comp else hdu.header
            info = hdu.fileinfo()
            d = {
                "index": i,
                "class": type(hdu).__name__,
                "bitpix": raw["BITPIX"],
                "naxes": [raw[f"NAXIS{n}"] for n in range(1, raw["NAXIS"] + 1)],
                "bzero": hdu.header.get("BZERO"),
                "bscale": hdu.header.get("BSCALE"),
                "extname": raw.get("EXTNAME"),
                "header_offset": info["hdrLoc"],
                "data_offset": info["datLoc"],
                "data_span": info["datSpan"],
                "cards": len(raw) + 1,
            }
            if comp:
                d["zbitpix"] = hdu.header["BITPIX"]
                d["znaxes"] = list(reversed(hdu.shape))
                d["ztile"] = [int(t) for t in reversed(hdu.tile_shape)]
                d["zcmptype"] = hdu.compression_type
            if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
                d["rows"] = hdu.header["NAXIS2"]
                d["columns"] = len(hdu.columns)
            hdus.append(d)
        for d, hdu in zip(hdus, hdul):
            if d["class"] in ("PrimaryHDU", "ImageHDU", "CompImageHDU") and hdu.data is not None:
                d["dtype"] = hdu.data.dtype.name
                d["shape"] = list(reversed(hdu.data.shape))
    print(json.dumps({"path": path, "hdus": hdus}))
"#;

fn opt_f64(v: &Value) -> Option<f64> {
    v.as_f64()
}

#[test]
fn fits_hdus_match_astropy() {
    let Some(py) = testkit::python(&["astropy"]) else {
        return;
    };
    let files = samples();
    let expected = testkit::python_records(&py, ASTROPY, &files);
    for want in &expected {
        let path = PathBuf::from(want["path"].as_str().expect("path"));
        let probe = probe_path(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(probe.format, Format::Fits);
        let Detail::Fits(info) = &probe.detail else {
            panic!("{}: not a FITS detail", path.display())
        };
        let want_hdus = want["hdus"].as_array().expect("hdus");
        assert_eq!(
            info.hdus.len(),
            want_hdus.len(),
            "{}: HDU count",
            path.display()
        );
        for (hdu, w) in info.hdus.iter().zip(want_hdus) {
            let ctx = format!("{} HDU {}", path.display(), hdu.index);
            let kind = match w["class"].as_str().unwrap() {
                "PrimaryHDU" => HduKind::Primary,
                "ImageHDU" => HduKind::Image,
                "BinTableHDU" | "CompImageHDU" => HduKind::Bintable,
                "TableHDU" => HduKind::Table,
                other => panic!("{ctx}: unexpected astropy class {other}"),
            };
            assert_eq!(hdu.kind, kind, "{ctx}");
            assert_eq!(hdu.bitpix, w["bitpix"].as_i64().unwrap(), "{ctx}");
            let naxes: Vec<u64> = w["naxes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap())
                .collect();
            assert_eq!(hdu.naxes, naxes, "{ctx}");
            assert_eq!(hdu.bzero, opt_f64(&w["bzero"]), "{ctx} BZERO");
            assert_eq!(hdu.bscale, opt_f64(&w["bscale"]), "{ctx} BSCALE");
            assert_eq!(
                hdu.extname.as_deref(),
                w["extname"].as_str(),
                "{ctx} EXTNAME"
            );
            assert_eq!(
                hdu.header_offset,
                w["header_offset"].as_u64().unwrap(),
                "{ctx}"
            );
            assert_eq!(hdu.data_offset, w["data_offset"].as_u64().unwrap(), "{ctx}");
            assert_eq!(
                hdu.data_bytes.div_ceil(2880) * 2880,
                w["data_span"].as_u64().unwrap(),
                "{ctx}"
            );
            assert_eq!(hdu.cards, w["cards"].as_u64().unwrap(), "{ctx} cards");
            assert_eq!(
                hdu.dtype.as_deref(),
                w["dtype"].as_str(),
                "{ctx} effective dtype"
            );
            match &hdu.compressed {
                Some(c) => {
                    assert_eq!(c.zbitpix, w["zbitpix"].as_i64().unwrap(), "{ctx}");
                    assert_eq!(Value::from(c.znaxes.clone()), w["znaxes"], "{ctx}");
                    assert_eq!(Value::from(c.ztile.clone()), w["ztile"], "{ctx}");
                    assert_eq!(c.zcmptype, w["zcmptype"].as_str().unwrap(), "{ctx}");
                    assert_eq!(Value::from(c.znaxes.clone()), w["shape"], "{ctx}");
                }
                None => assert!(
                    w.get("zbitpix").is_none(),
                    "{ctx}: astropy sees a compressed image"
                ),
            }
            match &hdu.table {
                Some(t) => {
                    assert_eq!(t.rows, w["rows"].as_u64().unwrap(), "{ctx}");
                    assert_eq!(t.columns, w["columns"].as_u64().unwrap(), "{ctx}");
                }
                None => assert!(
                    w.get("rows").is_none() || hdu.compressed.is_some(),
                    "{ctx}: astropy sees a table"
                ),
            }
            if hdu.compressed.is_none() {
                if let Some(shape) = w.get("shape") {
                    assert_eq!(Value::from(hdu.naxes.clone()), *shape, "{ctx}");
                }
            }
        }
        check_summary(&path, info, &probe.image, want_hdus);
    }
}

/// The image summary is the first image HDU with data; pages count planes of all of them.
fn check_summary(
    path: &std::path::Path,
    info: &FitsInfo,
    image: &Option<membudget::probe::ImageSummary>,
    want: &[Value],
) {
    let with_data: Vec<&Value> = want.iter().filter(|w| w.get("shape").is_some()).collect();
    let Some(first) = with_data.first() else {
        assert!(
            image.is_none(),
            "{}: no image HDU with data",
            path.display()
        );
        return;
    };
    let s = image
        .as_ref()
        .unwrap_or_else(|| panic!("{}: image summary", path.display()));
    let shape: Vec<u64> = first["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap())
        .collect();
    assert_eq!(s.width, shape[0], "{}", path.display());
    assert_eq!(
        s.height,
        shape.get(1).copied().unwrap_or(1),
        "{}",
        path.display()
    );
    let pages: u64 = with_data
        .iter()
        .map(|w| {
            w["shape"]
                .as_array()
                .unwrap()
                .iter()
                .skip(2)
                .map(|v| v.as_u64().unwrap())
                .product::<u64>()
        })
        .sum();
    assert_eq!(s.pages, pages, "{}: pages", path.display());
    let dtype = first["dtype"].as_str().unwrap();
    assert_eq!(
        s.bits,
        dtype
            .trim_start_matches(char::is_alphabetic)
            .parse::<u32>()
            .unwrap(),
        "{}",
        path.display()
    );
    let compressed = first.get("zbitpix").is_some();
    assert_eq!(s.compressed, compressed, "{}", path.display());
    if !compressed {
        assert_eq!((s.layout, s.block), (Layout::Strips, [s.width, 1]));
    }
    assert!(info.hdus.iter().any(|h| h.is_image_with_data()));
}

#[test]
fn named_cases() {
    // int16 + BZERO 32768 is uint16, in the STIS raw file's SCI extensions.
    let probe = probe_path(&testkit::data("fits/o4sp040b0_raw.fits")).expect("probe");
    let Detail::Fits(info) = &probe.detail else {
        panic!()
    };
    assert_eq!(info.hdus[1].extname.as_deref(), Some("SCI"));
    assert_eq!(info.hdus[1].dtype.as_deref(), Some("uint16"));
    let s = probe.image.as_ref().expect("image");
    assert_eq!((s.width, s.height, s.bits, s.pages), (62, 44, 16, 2));
    // A table is a table, not an image.
    let probe = probe_path(&testkit::data("fits/tb.fits")).expect("probe");
    assert!(probe.image.is_none());
    let Detail::Fits(info) = &probe.detail else {
        panic!()
    };
    let t = info.hdus[1].table.as_ref().expect("table");
    assert_eq!((t.rows, t.columns), (2, 4));
    // The 3-D cube counts its planes as pages.
    let probe = probe_path(&testkit::data("fits/arange.fits")).expect("probe");
    let s = probe.image.expect("image");
    assert_eq!((s.width, s.height, s.pages, s.bits), (11, 10, 7, 32));
    // The tile-compressed image reports the image's geometry, not the table's.
    let probe = probe_path(&testkit::data("fits/comp.fits")).expect("probe");
    let s = probe.image.expect("image");
    assert_eq!(
        (s.width, s.height, s.bits, s.compressed),
        (440, 300, 16, true)
    );
}
