//! `tile-enhance spots` without Python: tiled equals whole-image output, F1 against the
//! ground truth of generated scenes, sub-pixel accuracy, flat/float/corrupt inputs.

mod spots_util;

use spots_util::*;

/// Spots on the tile borders (both sides of each), in the corners and on the image edges.
fn border_spots(width: u32, height: u32, tile: u32) -> Vec<(f64, f64)> {
    let (w, h) = (f64::from(width), f64::from(height));
    let mut v = vec![
        (0.0, 0.0),
        (0.0, w - 1.0),
        (h - 1.0, 0.0),
        (h - 1.0, w - 1.0),
        (h / 2.0, 0.0),
        (0.0, w / 2.0),
    ];
    let mut k = tile;
    while k < width.max(height) {
        let b = f64::from(k);
        for (dy, dx) in [(0.0, 0.0), (-1.0, -1.0), (-0.5, -0.5), (0.3, -1.0)] {
            if b < h {
                v.push((b + dy, (b * 1.37 + 11.0) % w));
            }
            if b < w {
                v.push(((b * 0.73 + 5.0) % h, b + dx));
            }
            if b < h && b < w {
                v.push((b + dy, b + dx));
            }
        }
        k += tile;
    }
    v
}

#[test]
fn tiled_output_equals_whole_image_output() {
    // (seed, sigma, min distance, extra tile pixels beyond the halo, more options)
    let cases: &[(u64, &str, u32, u32, &[&str])] = &[
        (1, "1.5", 2, 3, &[]),
        (2, "1.0", 1, 1, &["--subpixel"]),
        (3, "2.0", 2, 4, &["--readout", "mean:2"]),
        (4, "1.3", 3, 2, &["--readout", "max:3"]),
        (5, "2.5", 1, 5, &["--subpixel"]),
        (6, "1.5", 4, 1, &[]),
        (7, "1.2:2.4:4", 2, 3, &["--subpixel"]),
        (8, "0.8", 1, 2, &[]),
        (9, "1.7", 2, 7, &["--readout", "mean:1"]),
        (10, "1:3:3", 3, 2, &[]),
        (11, "3.0", 2, 3, &["--subpixel", "--readout", "max:2"]),
        (12, "1.5", 2, 0, &[]),
    ];
    for &(seed, sigma, d, extra, more) in cases {
        let smax: f64 = sigma
            .split(':')
            .take(2)
            .map(|s| s.parse::<f64>().unwrap())
            .fold(0.0, f64::max);
        let halo = (4.0 * smax).ceil() as u32 + d;
        let tile = halo + extra.max(1);
        let (w, h) = (97 + 13 * seed as u32 % 50, 83 + 7 * seed as u32 % 40);
        let sc = scene(seed, w, h, 40, &border_spots(w, h, tile));
        let dir = testkit::tempdir();
        let img = dir.path().join("s.tif");
        write_gray16(&img, w, h, &[&sc.pixels]);
        let img = img.to_str().unwrap();
        let dd = d.to_string();
        for threshold in [None, Some("40")] {
            let mut outs = Vec::new();
            for t in ["100000", &tile.to_string()] {
                let o = dir.path().join(format!("t{t}"));
                let mut args = vec![
                    "-f",
                    "--sigma",
                    sigma,
                    "-d",
                    &dd,
                    "--tile",
                    t,
                    "-o",
                    o.to_str().unwrap(),
                    img,
                ];
                args.extend_from_slice(more);
                if let Some(th) = threshold {
                    args.extend(["--threshold", th]);
                }
                let rec = spots_ok(&args);
                outs.push((csv_of(&rec), rec));
            }
            let (whole, tiled) = (&outs[0], &outs[1]);
            assert_eq!(whole.1["spots"]["tiles"], 1);
            assert!(tiled.1["spots"]["tiles"].as_u64().unwrap() > 4);
            assert_eq!(whole.1["spots"]["threshold"], tiled.1["spots"]["threshold"]);
            assert!(
                positions(&whole.0).len() > 10,
                "seed {seed}: too few spots to test anything:\n{}",
                whole.0
            );
            assert!(
                whole.0 == tiled.0,
                "seed {seed} sigma {sigma} D {d} tile {tile} {more:?} {threshold:?}: tiled differs"
            );
        }
    }
}

/// With the automatic threshold, the first pass keeps its strongest maxima (`--pool`, a
/// hidden option for this test, caps them): the output is the same whether they hold every
/// spot (one detection pass) or not (a second detection pass), tiled or not. In the first
/// case (seed 21: the image is the only channel, read by pixel) its values come from the
/// first pass, in the second from reading the image again.
#[test]
fn one_detection_pass_equals_two() {
    for (seed, sigma, d, more) in [
        (21u64, "1.5", "2", &["--subpixel"][..]),
        (22, "1.2:2.4:3", "2", &["--readout", "mean:2"][..]),
        (23, "2.0", "1", &["--subpixel", "--readout", "max:1"][..]),
    ] {
        let (w, h) = (230, 170);
        let sc = scene(seed, w, h, 150, &border_spots(w, h, 40));
        let dir = testkit::tempdir();
        let img = dir.path().join("p.tif");
        write_gray16(&img, w, h, &[&sc.pixels]);
        let mut outs = Vec::new();
        for (tile, pool) in [
            ("100000", None),
            ("40", None),
            ("100000", Some("1")),
            ("40", Some("7")),
        ] {
            let o = dir.path().join(format!("t{tile}-{pool:?}"));
            let mut args = vec![
                "-f",
                "--sigma",
                sigma,
                "-d",
                d,
                "--tile",
                tile,
                "-o",
                o.to_str().unwrap(),
                img.to_str().unwrap(),
            ];
            args.extend_from_slice(more);
            if let Some(n) = pool {
                args.extend(["--pool", n]);
            }
            let rec = spots_ok(&args);
            let passes = rec["spots"]["detect_passes"].as_u64().unwrap();
            assert_eq!(passes, if pool.is_some() { 2 } else { 1 }, "{rec}");
            outs.push(csv_of(&rec));
        }
        assert!(positions(&outs[0]).len() > 50, "seed {seed}: too few spots");
        for (i, o) in outs.iter().enumerate().skip(1) {
            assert!(*o == outs[0], "seed {seed}: run {i} differs from the first");
        }
    }
}

#[test]
fn f1_against_ground_truth_is_high() {
    let dir = testkit::tempdir();
    let (w, h) = (256, 256);
    let sc = scene(42, w, h, 120, &[]);
    let img = dir.path().join("f1.tif");
    write_gray16(&img, w, h, &[&sc.pixels]);
    let rec = spots_ok(&[
        "--sigma",
        "1.6",
        "--subpixel",
        "--tile",
        "64",
        img.to_str().unwrap(),
    ]);
    let csv = csv_of(&rec);
    let found: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            (f[2], f[3])
        })
        .collect();
    let (p, r, f1) = f1(&found, &sc.truth, 1.5);
    eprintln!(
        "precision {p:.3} recall {r:.3} F1 {f1:.3}, threshold {}",
        rec["spots"]["threshold"]
    );
    // Random spots overlap now and then (two within 1.5 sigma are one blob).
    assert!(f1 >= 0.95, "F1 {f1} (precision {p}, recall {r})");
}

#[test]
fn subpixel_positions_are_within_a_tenth_of_a_pixel() {
    let dir = testkit::tempdir();
    let truth: Vec<(f64, f64)> = (0..16)
        .map(|i| {
            (
                10.0 + 12.0 * f64::from(i / 4) + 0.1 * f64::from(i % 5),
                10.0 + 12.0 * f64::from(i % 4) + 0.37 - 0.2 * f64::from(i % 3),
            )
        })
        .collect();
    let mut sc = scene(1, 60, 60, 0, &truth);
    // No noise: the fit alone.
    let flat = scene(1, 60, 60, 0, &[]);
    for (p, b) in sc.pixels.iter_mut().zip(&flat.pixels) {
        *p = p.saturating_sub(*b) + 100;
    }
    let img = dir.path().join("sub.tif");
    write_gray16(&img, 60, 60, &[&sc.pixels]);
    let rec = spots_ok(&[
        "--sigma",
        "1.5",
        "--subpixel",
        "-t",
        "50",
        img.to_str().unwrap(),
    ]);
    let csv = csv_of(&rec);
    assert!(
        csv.starts_with("y,x,y_sub,x_sub,sigma,response,c0\n"),
        "{csv}"
    );
    let found: Vec<(f64, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<f64> = l.split(',').map(|v| v.parse().unwrap()).collect();
            (f[2], f[3])
        })
        .collect();
    assert_eq!(found.len(), truth.len(), "{csv}");
    for t in &truth {
        let best = found
            .iter()
            .map(|f| ((f.0 - t.0).powi(2) + (f.1 - t.1).powi(2)).sqrt())
            .fold(f64::MAX, f64::min);
        assert!(best < 0.1, "spot {t:?}: nearest fit {best} px away\n{csv}");
    }
}

#[test]
fn multi_scale_reports_each_spots_scale() {
    let dir = testkit::tempdir();
    let (w, h) = (80u32, 40u32);
    let mut img = vec![0.0f64; (w * h) as usize];
    for (cx, s) in [(20.0, 1.5), (40.0, 2.5), (60.0, 3.5)] {
        for y in 0..h {
            for x in 0..w {
                let d2 = (f64::from(y) - 20.0).powi(2) + (f64::from(x) - cx).powi(2);
                img[(y * w + x) as usize] += 3000.0 * (-d2 / (2.0 * s * s)).exp();
            }
        }
    }
    let px: Vec<u16> = img.iter().map(|v| v.round() as u16).collect();
    let p = dir.path().join("ms.tif");
    write_gray16(&p, w, h, &[&px]);
    let rec = spots_ok(&[
        "--sigma",
        "1:4:7",
        "-d",
        "3",
        "-t",
        "100",
        p.to_str().unwrap(),
    ]);
    let csv = csv_of(&rec);
    let got: Vec<(u32, f64)> = csv
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    // linspace(1, 4, 7) = 1, 1.5, ... 4: each blob at its own sigma.
    assert_eq!(got, vec![(20, 1.5), (40, 2.5), (60, 3.5)], "{csv}");
    assert_eq!(rec["spots"]["sigma"].as_array().unwrap().len(), 7);
}

#[test]
fn flat_float_and_corrupt_inputs() {
    let dir = testkit::tempdir();
    let flat = dir.path().join("flat.tif");
    write_gray16(&flat, 50, 40, &[&vec![1234u16; 2000]]);
    let bad = dir.path().join("bad.tif");
    std::fs::write(&bad, b"II*\0\x08\0\0\0\xff\xff garbage").unwrap();
    let float = testkit::data("tiff/predictor-3-gray-f32.tif");
    let out = spots(&[
        "--sigma",
        "1.5",
        "-o",
        dir.path().join("o").to_str().unwrap(),
        bad.to_str().unwrap(),
        flat.to_str().unwrap(),
        float.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let recs = testkit::ndjson(&out.stdout);
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0]["error"]["kind"], "corrupt", "{}", recs[0]);
    let f = &recs[1]["spots"];
    assert_eq!(f["status"], "ok", "{}", recs[1]);
    assert_eq!(f["count"], 0);
    assert!(f["threshold"].is_null());
    assert!(f["note"].as_str().unwrap().contains("no spots"));
    assert_eq!(csv_of(&recs[1]), "y,x,sigma,response,c0\n");
    assert_eq!(recs[2]["error"]["kind"], "unsupported", "{}", recs[2]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.tif"), "{err}");
}

#[test]
fn bad_options_are_usage_errors() {
    for args in [
        &["x.tif"][..],
        &["--sigma", "0", "x.tif"],
        &["--sigma", "3:1:4", "x.tif"],
        &["--sigma", "1", "--readout", "median:2", "x.tif"],
        &["--sigma", "1", "--detect-on", "nope", "x.tif"],
        &["--sigma", "1", "--channel", "c1=a.tif", "x.tif"],
        &["--sigma", "1", "--fwhm", "2", "x.tif"],
        &["--spot-radius", "300", "x.tif"],
    ] {
        let out = spots(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn spot_radius_and_fwhm_set_sigma_and_distance() {
    let dir = testkit::tempdir();
    let sc = scene(3, 64, 64, 10, &[]);
    let p = dir.path().join("r.tif");
    write_gray16(&p, 64, 64, &[&sc.pixels]);
    let p = p.to_str().unwrap();
    let rec = spots_ok(&["--spot-radius", "350", "--pixel-size", "100", "-t", "30", p]);
    assert_eq!(rec["spots"]["sigma"], 3.5);
    assert_eq!(rec["spots"]["min_distance"], 3);
    assert_eq!(rec["spots"]["halo"], 14 + 3);
    let rec = spots_ok(&["--fwhm", "4.7096", "-t", "30", "-f", p]);
    assert!((rec["spots"]["sigma"].as_f64().unwrap() - 2.0).abs() < 1e-9);
    assert_eq!(rec["spots"]["min_distance"], 2);
}

#[test]
fn a_missing_channel_is_an_error_record() {
    let dir = testkit::tempdir();
    let p = dir.path().join("one.tif");
    write_gray16(&p, 20, 20, &[&[100u16; 400]]);
    let small = dir.path().join("small.tif");
    write_gray16(&small, 10, 20, &[&[100u16; 200]]);
    let p = p.to_str().unwrap();
    for (args, kind, says) in [
        (vec!["--detect-on", "c3"], "bad_record", "c0 to c0"),
        (vec!["--channel", "x=/nonexistent.tif"], "not_found", ""),
        (
            vec!["--channel", &*format!("s={}", small.display())],
            "bad_record",
            "10x20",
        ),
    ] {
        let mut a = vec!["--sigma", "1", "-t", "5"];
        a.extend(args);
        a.push(p);
        let out = spots(&a);
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        let r = &testkit::ndjson(&out.stdout)[0];
        assert_eq!(r["error"]["kind"], kind, "{r}");
        assert!(
            r["error"]["message"].as_str().unwrap().contains(says),
            "{r}"
        );
    }
}
