//! The FITS wrapper against astropy: every sample file read as astropy reads it (or
//! refused clearly), cubes plane by plane, regions never wrapping, and written files
//! read back by astropy.

use raster::fits::{Algorithm, Compression, FitsReader, FitsWriter, HduSel};
use raster::{Band, RowSource};
use std::path::{Path, PathBuf};

/// astropy's physical values of one HDU (all planes, C order) as little-endian f64.
fn astropy_values(py: &Path, file: &Path, hdu: usize, out: &Path) -> Vec<f64> {
    testkit::run_python(
        py,
        "import sys, numpy as np\nfrom astropy.io import fits\n\
         d = fits.getdata(sys.argv[1], int(sys.argv[2]))\n\
         np.asarray(d, dtype='<f8').tofile(sys.argv[3])",
        &[
            file.to_str().unwrap(),
            &hdu.to_string(),
            out.to_str().unwrap(),
        ],
    );
    std::fs::read(out)
        .unwrap()
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn read_all(r: &mut FitsReader) -> Vec<f64> {
    let info = r.info().clone();
    let mut all = Vec::new();
    for p in 0..info.planes {
        r.select_plane(p).unwrap();
        // Odd bands of rows, as a window would ask for them.
        let mut y = 0;
        while y < info.height {
            let rows = 7.min(info.height - y);
            let mut v = vec![0f64; info.width as usize * rows as usize];
            r.read_rows_f64(y, rows, &mut v).unwrap();
            all.extend(v);
            y += rows;
        }
    }
    all
}

#[test]
fn every_sample_file_reads_as_astropy_or_is_refused() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let tmp = dir.path().join("v.bin");
    // (file, HDU astropy reads for the default selection, or None: refused)
    let cases: &[(&str, Option<usize>)] = &[
        ("fits/arange.fits", Some(0)),
        ("fits/comp.fits", Some(1)),
        ("fits/fixed-1890.fits", Some(0)),
        ("fits/o4sp040b0_raw.fits", Some(1)),
        ("fits/scale.fits", Some(0)),
        ("fits/test0.fits", Some(1)),
        ("fits/tb.fits", None),
    ];
    for &(rel, hdu) in cases {
        let path = testkit::data(rel);
        let r = FitsReader::open(&path, &HduSel::FirstImage);
        let Some(hdu) = hdu else {
            let e = r.expect_err(rel);
            assert!(e.message.contains("table"), "{rel}: {}", e.message);
            continue;
        };
        let mut r = r.unwrap_or_else(|e| panic!("{rel}: {e}"));
        assert_eq!(r.info().hdu, hdu, "{rel}");
        let want = astropy_values(&py, &path, hdu, &tmp);
        let got = read_all(&mut r);
        assert_eq!(got.len(), want.len(), "{rel}");
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            // astropy scales int16 with BSCALE in float32: agree to float32 precision.
            let tol = if r.info().bscale != 1.0 {
                1e-6 * w.abs().max(1.0)
            } else {
                0.0
            };
            assert!((g - w).abs() <= tol, "{rel} sample {i}: {g} != {w}");
        }
        // The band (RowSource) holds the same values in f32/f64 as documented.
        let sb = r.info().physical_bytes();
        r.select_plane(0).unwrap();
        let mut band = Band::default();
        let h = r.info().height;
        r.read_band(1, h - 1, &mut band).unwrap();
        assert_eq!(r.geometry().sample_bytes, sb);
        let w = r.info().width as usize;
        for (i, c) in band.planes[0].chunks_exact(sb).enumerate() {
            let v = if sb == 8 {
                f64::from_ne_bytes(c.try_into().unwrap())
            } else {
                f64::from(f32::from_ne_bytes(c.try_into().unwrap()))
            };
            let e = want[w + i];
            assert!(
                (v - e).abs() <= 1e-6 * e.abs().max(1.0),
                "{rel} band sample {i}"
            );
        }
    }
}

/// fitsio's `read_rows` panics on 3-D data; the wrapper reads each plane as astropy's
/// `data[k]`.
#[test]
fn cube_planes_equal_astropy_slices() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let path = testkit::data("fits/arange.fits");
    let want = astropy_values(&py, &path, 0, &dir.path().join("v.bin"));
    let mut r = FitsReader::open(&path, &HduSel::FirstImage).unwrap();
    assert_eq!(
        (r.info().width, r.info().height, r.info().planes),
        (11, 10, 7)
    );
    let plane = 110;
    for k in [6u64, 0, 3] {
        r.select_plane(k).unwrap();
        let mut v = vec![0f64; 11 * 4];
        r.read_rows_f64(5, 4, &mut v).unwrap();
        let a = k as usize * plane + 5 * 11;
        assert_eq!(v, want[a..a + 44], "plane {k}");
    }
    assert!(r.select_plane(7).is_err());
}

/// fitsio's `read_region` takes columns first and wraps a column range past NAXIS1 into
/// the next row; the wrapper takes x and y by name and refuses ranges outside.
#[test]
fn regions_take_x_then_y_and_never_wrap() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let path = testkit::data("fits/o4sp040b0_raw.fits");
    let want = astropy_values(&py, &path, 1, &dir.path().join("v.bin"));
    let mut r = FitsReader::open(&path, &HduSel::Name("sci".into())).unwrap();
    assert_eq!(r.info().hdu, 1);
    let (w, h) = (62usize, 44usize);
    let got = r.read_region(50..62, 3..9).unwrap();
    let mut exp = Vec::new();
    for y in 3..9 {
        exp.extend_from_slice(&want[y * w + 50..y * w + 62]);
    }
    assert_eq!(got, exp);
    let e = r.read_region(50..63, 3..9).unwrap_err();
    assert!(e.message.contains("outside"), "{}", e.message);
    assert!(r.read_region(0..1, 0..h as u32 + 1).is_err());
    // By index: the second SCI extension.
    let r = FitsReader::open(&path, &HduSel::Index(4)).unwrap();
    assert_eq!(r.info().extname.as_deref(), Some("SCI"));
    let e = FitsReader::open(&path, &HduSel::Index(2)).unwrap_err();
    assert!(e.message.contains("no 2-D image"), "{}", e.message);
    let e = FitsReader::open(&path, &HduSel::Index(7)).unwrap_err();
    assert!(e.message.contains("7 HDU"), "{}", e.message);
}

/// A raw copy (uint16 as BZERO=32768), header cards and HISTORY carried, read back by
/// astropy; tile-compressed output too.
#[test]
fn written_files_read_back_in_astropy() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let src = testkit::data("fits/fixed-1890.fits");
    let mut r = FitsReader::open(&src, &HduSel::FirstImage).unwrap();
    let info = r.info().clone();
    let want = astropy_values(&py, &src, 0, &dir.path().join("v.bin"));
    for (name, comp) in [
        ("raw.fits", None),
        (
            "rice.fits",
            Some(Compression {
                algorithm: Algorithm::Rice,
                quantize: None,
            }),
        ),
        (
            "gz.fits",
            Some(Compression {
                algorithm: Algorithm::Gzip,
                quantize: None,
            }),
        ),
    ] {
        let out: PathBuf = dir.path().join(name);
        let mut w =
            FitsWriter::create(&out, info.width, info.height, 1, info.bitpix, comp).unwrap();
        w.copy_cards(&r.header_cards().unwrap()).unwrap();
        w.raw_scaling(info.bzero, info.bscale).unwrap();
        w.history("strip-convert: test copy").unwrap();
        let mut y = 0;
        while y < info.height {
            let rows = 33.min(info.height - y);
            let mut buf = vec![0u8; info.width as usize * rows as usize * 2];
            r.read_rows_raw(y, rows, &mut buf).unwrap();
            w.write_rows_raw(0, y, &buf).unwrap();
            y += rows;
        }
        w.finish().unwrap();
        let hdu = usize::from(comp.is_some());
        let got = astropy_values(&py, &out, hdu, &dir.path().join("w.bin"));
        assert_eq!(got, want, "{name}");
        let head = testkit::run_python(
            &py,
            "import sys\nfrom astropy.io import fits\n\
             h = fits.open(sys.argv[1])[int(sys.argv[2])]\n\
             print(h.data.dtype, 'HISTORY' in h.header and 'test copy' in str(h.header['HISTORY']), h.header.get('ORIGIN'))",
            &[out.to_str().unwrap(), &hdu.to_string()],
        );
        assert_eq!(
            head.split_whitespace().take(2).collect::<Vec<_>>(),
            ["uint16", "True"],
            "{name}: {head}"
        );
    }
}
