//! FITS frames against astropy and numpy: CFA planes equal numpy slicing, each
//! normalisation its formula, each stack its numpy/astropy reference, every sample file
//! read or refused clearly, and a stack of frames 20x the budget under the budget with
//! the same result whatever the budget.

use std::path::Path;

fn run(args: &[&str], dir: &Path) -> testkit::Ran {
    testkit::tool("strip-convert")
        .current_dir(dir)
        .args(args)
        .run()
}

fn py_in(py: &Path, dir: &Path, code: &str) -> String {
    let full = format!("import os, sys, json, numpy as np\nfrom astropy.io import fits\nos.chdir(sys.argv[1])\n{code}");
    testkit::run_python(py, &full, &[dir.to_str().unwrap()])
}

#[test]
fn cfa_planes_equal_numpy_slicing_for_every_bitpix_pattern_and_odd_size() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    // One frame per stored type (uint16 and int16+BSCALE through BZERO/BSCALE), odd sizes.
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(3)
types = {'u8': np.uint8, 'i16': np.int16, 'u16': np.uint16, 'i32': np.int32, 'i64': np.int64, 'f32': np.float32, 'f64': np.float64}
for i, (k, t) in enumerate(types.items()):
    h, w = (7 + 2 * (i % 2), 9 + (i % 3))
    a = rng.integers(0, 250, (h, w)).astype(t) if k in ('u8',) else (rng.normal(0, 1000, (h, w)).astype(t) if k[0] == 'f' else rng.integers(-30000 if k != 'u16' else 0, 60000 if k == 'u16' else 30000, (h, w)).astype(t))
    fits.writeto(f'{k}.fits', a, overwrite=True)
s = fits.PrimaryHDU(rng.integers(-3000, 3000, (8, 11)).astype(np.int16))
s.header['BSCALE'] = 0.25; s.header['BZERO'] = 100.5
s.header['BAYERPAT'] = 'GRBG'; s.header['ROWORDER'] = 'TOP-DOWN'
s.writeto('scaled.fits', overwrite=True)
"#,
    );
    let names = ["u8", "i16", "u16", "i32", "i64", "f32", "f64", "scaled"];
    let patterns = [
        "RGGB", "BGGR", "GRBG", "GBRG", "RGGB", "BGGR", "GRBG", "auto",
    ];
    for (n, p) in names.iter().zip(patterns) {
        let recs = run(&["--split-cfa", p, &format!("{n}.fits")], d)
            .check()
            .records();
        assert_eq!(
            recs[0]["strip-convert"]["status"], "ok",
            "{n}: {:?}",
            recs[0]
        );
    }
    let res = py_in(
        &py,
        d,
        r#"
names = ['u8', 'i16', 'u16', 'i32', 'i64', 'f32', 'f64', 'scaled']
pats = ['RGGB', 'BGGR', 'GRBG', 'GBRG', 'RGGB', 'BGGR', 'GRBG', 'GRBG']
for n, p in zip(names, pats):
    with fits.open(n + '.fits') as f:
        a = f[0].data; H, W = a.shape
        raw = fits.getdata(n + '.fits', do_not_scale_image_data=True)
    for k in range(4):
        dy, dx = divmod(k, 2)
        with fits.open(f'CFA{k}_{n}.fits') as g:
            b = g[0].data; hd = g[0].header
            assert b.dtype == a.dtype, (n, k, b.dtype, a.dtype)
            assert b.shape == (H // 2, W // 2), (n, b.shape)
            assert np.array_equal(b, a[dy::2, dx::2][:H // 2, :W // 2]), (n, k)
            rb = fits.getdata(f'CFA{k}_{n}.fits', do_not_scale_image_data=True)
            assert np.array_equal(rb, raw[dy::2, dx::2][:H // 2, :W // 2]), (n, k, 'raw')
            assert hd['FILTER'] == p[k], (n, k, hd['FILTER'])
            assert 'BAYERPAT' not in hd and 'CFA' in str(hd['HISTORY'])
print('ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
    // --cfa-rgb: R, (G1+G2)/2, B from the physical values.
    let recs = run(&["--split-cfa", "GBRG", "--cfa-rgb", "scaled.fits"], d).records();
    assert_eq!(recs[0]["strip-convert"]["status"], "ok");
    let res = py_in(
        &py,
        d,
        r#"
a = fits.getdata('scaled.fits').astype('f8'); H, W = a.shape
q = lambda dy, dx: a[dy::2, dx::2][:H // 2, :W // 2]
want = np.stack([q(1, 0), (q(0, 0) + q(1, 1)) / 2, q(0, 1)])
got = fits.getdata('RGB_scaled.fits')
assert got.dtype.kind == 'f' and got.dtype.itemsize == 4 and got.shape == want.shape
print(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1)))
"#,
    );
    assert!(res.trim().parse::<f64>().unwrap() < 1e-6, "{res}");
}

#[test]
fn each_normalisation_equals_its_formula() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(5)
for i in range(3):
    fits.writeto(f'i{i}.fits', rng.integers(100 + 50 * i, 3000 + 100 * i, (21, 14)).astype(np.int16), overwrite=True)
    fits.writeto(f'f{i}.fits', (rng.normal(500 + 80 * i, 20 + 3 * i, (20, 15))).astype(np.float32), overwrite=True)
"#,
    );
    for m in ["additive", "multiplicative", "addscale", "mulscale"] {
        for set in ["i", "f"] {
            let files: Vec<String> = (0..3).map(|i| format!("{set}{i}.fits")).collect();
            let mut args = vec!["--force", "--normalize", m];
            args.extend(files.iter().map(String::as_str));
            let recs = run(&args, d).check().records();
            assert_eq!(recs.len(), 3);
            let res = py_in(
                &py,
                d,
                &format!(
                    r#"
m, s = '{m}', '{set}'
def st(a):
    a = a.astype('f8'); L = np.median(a); return L, np.median(np.abs(a - L))
Lr, Sr = st(fits.getdata(s + '0.fits'))
worst = 0
for i in range(3):
    x = fits.getdata(f'{{s}}{{i}}.fits').astype('f8'); Li, Si = st(x)
    want = {{'additive': x - (Li - Lr), 'multiplicative': x * Lr / Li,
            'addscale': (Sr / Si) * (x - Li) + Lr, 'mulscale': x * (Sr / Si) * (Lr / Li)}}[m]
    got = fits.getdata(f'norm_{{s}}{{i}}.fits')
    worst = max(worst, np.max(np.abs(got - want) / np.abs(want)))
print(worst)
"#
                ),
            );
            assert!(
                res.trim().parse::<f64>().unwrap() < 1e-6,
                "{m} {set}: {res}"
            );
            let r = &recs[1]["strip-convert"]["normalize"];
            assert!(
                r["location"].as_f64().is_some() && r["reference"]["path"] == files[0].as_str()
            );
        }
    }
}

#[test]
fn stacks_equal_numpy_and_astropy_references() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(9)
y, x = np.mgrid[0:23, 0:31]
for i in range(9):
    a = 1000 + 3 * x + 2 * y + 40 * i + rng.normal(0, 10, x.shape)
    hot = rng.random(x.shape) < 0.03
    a[hot] += rng.uniform(500, 5000, hot.sum())
    a[rng.random(x.shape) < 0.01] -= 700
    fits.writeto(f'f{i}.fits', a.astype(np.float32), overwrite=True)
"#,
    );
    let frames: Vec<String> = (0..9).map(|i| format!("f{i}.fits")).collect();
    for (method, extra) in [
        ("mean", vec![]),
        ("median", vec![]),
        (
            "sigma-clip",
            vec!["--sigma-low", "2.5", "--sigma-high", "2"],
        ),
        ("sigma-clip", vec!["--normalize", "additive"]),
        ("winsorized", vec![]),
        ("minmax", vec!["--reject-low", "2", "--reject-high", "1"]),
    ] {
        let mut args = vec![
            "--force",
            "--stack",
            method,
            "--output",
            "st.fits",
            "--rejection-map",
            "rej.fits",
        ];
        args.extend(extra.iter().copied());
        args.extend(frames.iter().map(String::as_str));
        let recs = run(&args, d).check().records();
        let s = &recs[0]["strip-convert"];
        assert_eq!(s["status"], "ok", "{s}");
        assert_eq!(s["inputs"].as_array().unwrap().len(), 9);
        let extra = extra.join(" ");
        let res = py_in(
            &py,
            d,
            &format!(
                r#"
from astropy.stats import sigma_clip
method, extra = '{method}', '{extra}'
cube = np.stack([fits.getdata(f'f{{i}}.fits').astype('f4').astype('f8') for i in range(9)])
if 'additive' in extra:
    L = np.array([np.median(c) for c in cube]); cube = cube - (L - L[0])[:, None, None]
sl = 2.5 if '2.5' in extra else 3.0; sh = 2.0 if '--sigma-high 2' in extra else 3.0
rej = np.zeros(cube.shape[1:])
if method == 'mean': want = cube.mean(0)
elif method == 'median': want = np.median(cube, 0)
elif method == 'sigma-clip':
    c = sigma_clip(cube, sigma_lower=sl, sigma_upper=sh, maxiters=None, cenfunc='median', stdfunc='std', axis=0)
    want = c.mean(0).filled(np.nan); rej = c.mask.sum(0)
elif method == 'minmax':
    want = np.sort(cube, 0)[2:-1].mean(0); rej[:] = 3
else:
    want = np.empty(cube.shape[1:])
    for j in np.ndindex(*want.shape):
        v = cube[(slice(None),) + j].copy()
        while True:
            m = np.median(v); s = v.std()
            for _ in range(100):
                w = np.clip(v, m - 1.5 * s, m + 1.5 * s); s0 = s; s = 1.134 * w.std()
                if abs(s - s0) <= s0 * 0.0005: break
            keep = (v >= m - 3 * s) & (v <= m + 3 * s)
            changed = keep.sum() != len(v); v = v[keep]
            if not changed or len(v) <= 3: break
        want[j] = v.mean(); rej[j] = 9 - len(v)
got = fits.getdata('st.fits'); h = fits.getheader('st.fits')
assert got.dtype.kind == 'f' and got.dtype.itemsize == 4 and h['NCOMBINE'] == 9 and h['STACKMET'] == method
r = fits.getdata('rej.fits')
assert np.array_equal(r, rej), (method, np.argwhere(r != rej)[:5])
print(np.max(np.abs(got - want) / np.abs(want)), int(rej.sum()))
"#
            ),
        );
        let mut it = res.split_whitespace();
        let err: f64 = it.next().unwrap().parse().unwrap();
        let rejected: u64 = it.next().unwrap().parse().unwrap();
        assert!(err < 1e-5, "{method} {extra}: {res}");
        if method != "mean" && method != "median" {
            assert!(rejected > 0, "{method}: the test rejects nothing");
        }
    }
}

#[test]
fn every_sample_file_is_read_or_refused_clearly() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    for f in [
        "arange",
        "comp",
        "fixed-1890",
        "o4sp040b0_raw",
        "scale",
        "test0",
        "tb",
    ] {
        std::fs::copy(
            testkit::data(&format!("fits/{f}.fits")),
            d.join(format!("{f}.fits")),
        )
        .unwrap();
    }
    let ran = run(
        &[
            "--split-cfa",
            "RGGB",
            "arange.fits",
            "comp.fits",
            "fixed-1890.fits",
            "o4sp040b0_raw.fits",
            "scale.fits",
            "test0.fits",
            "tb.fits",
        ],
        d,
    );
    let recs = ran.records();
    assert_eq!(ran.code(), 1, "two inputs are refused");
    for r in &recs {
        let p = r["path"].as_str().unwrap();
        match p {
            "arange.fits" => assert!(
                r["error"]["message"].as_str().unwrap().contains("cube"),
                "{r}"
            ),
            "tb.fits" => assert!(
                r["error"]["message"].as_str().unwrap().contains("table"),
                "{r}"
            ),
            _ => assert_eq!(r["strip-convert"]["status"], "ok", "{r}"),
        }
    }
    assert!(!d.join("CFA0_arange.fits").exists() && !d.join("CFA0_tb.fits").exists());
    let res = py_in(
        &py,
        d,
        r#"
for n, hdu in [('comp', 1), ('fixed-1890', 0), ('o4sp040b0_raw', 1), ('scale', 0), ('test0', 1)]:
    a = fits.getdata(n + '.fits', hdu); H, W = a.shape
    for k in range(4):
        dy, dx = divmod(k, 2)
        b = fits.getdata(f'CFA{k}_{n}.fits')
        assert np.array_equal(b, a[dy::2, dx::2][:H // 2, :W // 2]), (n, k)
print('ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
    // A stack refuses a table and frames of different sizes before writing anything.
    let ran = run(
        &[
            "--stack",
            "mean",
            "--output",
            "s.fits",
            "scale.fits",
            "tb.fits",
        ],
        d,
    );
    let recs = ran.records();
    assert_eq!(ran.code(), 1);
    assert!(recs.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be read"));
    let recs = run(
        &[
            "--stack",
            "mean",
            "--output",
            "s.fits",
            "scale.fits",
            "fixed-1890.fits",
        ],
        d,
    )
    .records();
    assert!(
        recs.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one size"),
        "{recs:?}"
    );
    assert!(!d.join("s.fits").exists());
    // --hdu by index: the fourth SCI extension.
    let recs = run(
        &["--force", "--hdu", "4", "--split-cfa", "RGGB", "test0.fits"],
        d,
    )
    .records();
    assert_eq!(recs[0]["strip-convert"]["fits"]["hdu"], 4);
}

#[test]
fn a_stack_of_frames_twenty_times_the_budget_stays_under_it_with_the_same_result() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    // 60 frames of 2048x1024 float32: 480 MiB against a 24 MiB budget.
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(2)
base = rng.normal(100, 5, (1024, 2048)).astype(np.float32)
for i in range(60):
    fits.writeto(f'f{i:02}.fits', base + np.float32(i), overwrite=True)
"#,
    );
    let mut files: Vec<String> = (0..60).map(|i| format!("f{i:02}.fits")).collect();
    files.sort();
    let budget = 24u64 << 20;
    let mut outs = Vec::new();
    for (m, name) in [("24MiB", "a.fits"), ("1GiB", "b.fits")] {
        let mut args = vec!["--stack", "median", "--output", name, "-m", m];
        args.extend(files.iter().map(String::as_str));
        let meas = run(&args, d);
        let rec = &meas.check().records()[0]["strip-convert"];
        outs.push(rec["rows_per_block"].as_u64().unwrap());
        if m == "24MiB" {
            assert!(
                meas.peak_rss <= budget,
                "peak {} MiB over the 24 MiB budget",
                meas.peak_rss >> 20
            );
        }
    }
    assert!(
        outs[0] < outs[1],
        "the budgets planned the same blocks: {outs:?}"
    );
    let res = py_in(&py, d, "print(np.array_equal(fits.getdata('a.fits'), fits.getdata('b.fits')), float(fits.getdata('a.fits')[0, 0] - fits.getdata('f00.fits')[0, 0]))");
    assert_eq!(
        res.split_whitespace().collect::<Vec<_>>(),
        ["True", "29.5"],
        "{res}"
    );
}

#[test]
fn weighted_stacks_equal_numpy_inverse_variance_averages() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    // Frames of very different noise (and levels, for the normalised case): weighting
    // changes the result by far more than the tolerance.
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(21)
y, x = np.mgrid[0:29, 0:41]
for i in range(16):
    a = (1000 + 3 * x + 2 * y) * (1 + 0.05 * i) + rng.normal(0, 5 + 10 * (i % 4), x.shape)
    hot = rng.random(x.shape) < 0.03
    a[hot] += rng.uniform(500, 5000, hot.sum())
    fits.writeto(f'f{i:02}.fits', a.astype(np.float32), overwrite=True)
"#,
    );
    let frames: Vec<String> = (0..16).map(|i| format!("f{i:02}.fits")).collect();
    for (method, extra) in [
        ("mean", ""),
        ("sigma-clip", ""),
        ("sigma-clip", "--normalize multiplicative"),
        ("minmax", ""),
    ] {
        let mut args = vec![
            "--force",
            "--weighted",
            "--stack",
            method,
            "--output",
            "st.fits",
        ];
        args.extend(extra.split_whitespace());
        args.extend(frames.iter().map(String::as_str));
        let recs = run(&args, d).check().records();
        let s = &recs[0]["strip-convert"];
        assert_eq!(s["status"], "ok", "{s}");
        assert_eq!(s["weights"].as_array().unwrap().len(), 16, "{s}");
        let res = py_in(
            &py,
            d,
            &format!(
                r#"
from astropy.stats import sigma_clip
method, extra = '{method}', '{extra}'
cube = np.stack([fits.getdata(f'f{{i:02}}.fits').astype('f8') for i in range(16)])
med = np.array([np.median(c) for c in cube])
mad = np.array([np.median(np.abs(c - m)) for c, m in zip(cube, med)])
k = np.ones(16)
if 'multiplicative' in extra:
    k = med[0] / med; cube = (cube * k[:, None, None]).astype('f4').astype('f8')
sigma = 1.4826 * mad * k
w = 1 / sigma**2
if method == 'mean': mask = np.zeros(cube.shape, bool)
elif method == 'sigma-clip':
    mask = sigma_clip(cube, sigma=3, maxiters=None, cenfunc='median', stdfunc='std', axis=0).mask
else:
    o = np.argsort(cube, 0, kind='stable'); mask = np.zeros(cube.shape, bool)
    np.put_along_axis(mask, o[:1], True, 0); np.put_along_axis(mask, o[-1:], True, 0)
want = np.ma.average(np.ma.array(cube, mask=mask), axis=0, weights=np.broadcast_to(w[:, None, None], cube.shape)).filled(np.nan)
plain = np.ma.array(cube, mask=mask).mean(0).filled(np.nan)
got = fits.getdata('st.fits')
assert fits.getheader('st.fits')['STACKWGT'] == 'noise'
print(np.max(np.abs(got - want) / np.abs(want)), np.max(np.abs(plain - want) / np.abs(want)))
"#
            ),
        );
        let mut it = res.split_whitespace();
        let err: f64 = it.next().unwrap().parse().unwrap();
        let unweighted: f64 = it.next().unwrap().parse().unwrap();
        assert!(err < 1e-5, "{method} {extra}: {res}");
        assert!(
            unweighted > 1e-3,
            "{method} {extra}: weights change nothing: {res}"
        );
    }
    // A median is not weighted: refused before anything is written.
    let mut args = vec!["--weighted", "--stack", "median", "--output", "med.fits"];
    args.extend(frames.iter().map(String::as_str));
    let recs = run(&args, d).records();
    assert!(!d.join("med.fits").exists());
    assert!(
        recs.iter()
            .any(|r| r["error"]["message"].to_string().contains("--weighted")),
        "{recs:?}"
    );
}

#[test]
fn the_fits_stack_cost_model_is_within_20_percent_of_the_measured_peak() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["astropy", "numpy"]) else {
        return;
    };
    let d = dir.path();
    // 40 frames of 1024x512 float32 (80 MiB); blocks from a few rows to a few dozen.
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(5)
base = rng.normal(100, 5, (512, 1024)).astype(np.float32)
for i in range(40):
    fits.writeto(f'f{i:02}.fits', base + np.float32(i), overwrite=True)
"#,
    );
    let files: Vec<String> = (0..40).map(|i| format!("f{i:02}.fits")).collect();
    for limit_mib in [18u64, 24, 40] {
        let limit = format!("{limit_mib}MiB");
        let mut args = vec!["--force", "--stack", "sigma-clip", "--output", "st.fits"];
        args.extend(["-m", &limit]);
        args.extend(files.iter().map(String::as_str));
        let meas = run(&args, d);
        let peak = meas.peak_rss;
        let s = &meas.check().records()[0]["strip-convert"];
        let predicted = s["predicted_peak_bytes"].as_u64().unwrap();
        assert!(
            peak <= limit_mib << 20,
            "peak {peak} over {limit_mib} MiB: {s}"
        );
        let err = (predicted as f64 - peak as f64).abs() / peak as f64;
        assert!(err <= 0.2, "predicted {predicted}, measured {peak}: {s}");
        eprintln!(
            "{limit_mib} MiB: rows {} predicted {predicted} measured {peak}",
            s["rows_per_block"]
        );
    }
}
