//! FITS frames against astropy and numpy: CFA planes equal numpy slicing, each
//! normalisation its formula, each stack its numpy/astropy reference, every sample file
//! read or refused clearly, and a stack of frames 20x the budget under the budget with
//! the same result whatever the budget.

use std::path::Path;
use std::process::Command;

fn tool() -> Command {
    Command::new(testkit::bin("strip-convert"))
}

fn run(args: &[&str], dir: &Path) -> (Vec<serde_json::Value>, std::process::Output) {
    let out = tool().current_dir(dir).args(args).output().expect("run");
    (testkit::ndjson(&out.stdout), out)
}

fn py_in(py: &Path, dir: &Path, code: &str) -> String {
    let full = format!("import os, sys, json, numpy as np\nfrom astropy.io import fits\nos.chdir(sys.argv[1])\n{code}");
    testkit::run_python(py, &full, &[dir.to_str().unwrap()])
}

#[test]
fn cfa_planes_equal_numpy_slicing_for_every_bitpix_pattern_and_odd_size() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
        let (recs, out) = run(&["--split-cfa", p, &format!("{n}.fits")], d);
        assert!(
            out.status.success(),
            "{n}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
        # Siril's numbering (split_cfa in siril-cli 1.0.6): CFA0 = data[1::2, 0::2],
        # CFA1 = data[0::2, 0::2], CFA2 = data[1::2, 1::2], CFA3 = data[0::2, 1::2].
        dy, dx = 1 - k % 2, k // 2
        with fits.open(f'CFA{k}_{n}.fits') as g:
            b = g[0].data; hd = g[0].header
            assert b.dtype == a.dtype, (n, k, b.dtype, a.dtype)
            assert b.shape == (H // 2, W // 2), (n, b.shape)
            assert np.array_equal(b, a[dy::2, dx::2][:H // 2, :W // 2]), (n, k)
            rb = fits.getdata(f'CFA{k}_{n}.fits', do_not_scale_image_data=True)
            assert np.array_equal(rb, raw[dy::2, dx::2][:H // 2, :W // 2]), (n, k, 'raw')
            assert hd['FILTER'] == p[2 * dy + dx], (n, k, hd['FILTER'])
            assert 'BAYERPAT' not in hd and 'CFA' in str(hd['HISTORY'])
print('ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
    // --cfa-rgb: R, (G1+G2)/2, B from the physical values.
    let (recs, _) = run(&["--split-cfa", "GBRG", "--cfa-rgb", "scaled.fits"], d);
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
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
            let (recs, out) = run(&args, d);
            assert!(
                out.status.success(),
                "{m}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
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
    assert f'{{m}} normalisation' in ''.join(fits.getheader(f'norm_{{s}}{{i}}.fits')['HISTORY'])
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
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
        let (recs, out) = run(&args, d);
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
hist = ''.join(h['HISTORY'])  # CFITSIO continues long text on the next card
assert f'{method} stack of 9 frames' in hist and ('additive normalisation' in hist) == ('additive' in extra), hist
rh = fits.getheader('rej.fits')
assert rh['BUNIT'] == 'count' and rh['NCOMBINE'] == 9, repr(rh)
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
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
    let (recs, out) = run(
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
    assert_eq!(out.status.code(), Some(1), "two inputs are refused");
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
        dy, dx = 1 - k % 2, k // 2
        b = fits.getdata(f'CFA{k}_{n}.fits')
        assert np.array_equal(b, a[dy::2, dx::2][:H // 2, :W // 2]), (n, k)
print('ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
    // A stack refuses a table and frames of different sizes before writing anything.
    let (recs, out) = run(
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
    assert_eq!(out.status.code(), Some(1));
    assert!(recs.last().unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("could not be read"));
    let (recs, _) = run(
        &[
            "--stack",
            "mean",
            "--output",
            "s.fits",
            "scale.fits",
            "fixed-1890.fits",
        ],
        d,
    );
    assert!(
        recs.last().unwrap()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("one size"),
        "{recs:?}"
    );
    assert!(!d.join("s.fits").exists());
    // --hdu by index, by EXTNAME (any case: the first of that name) and by EXTNAME,EXTVER;
    // an empty HDU or a name not there is refused clearly.
    for (sel, file, hdu) in [
        ("4", "test0.fits", 4),
        ("sci", "test0.fits", 1),
        ("SCI,3", "test0.fits", 3),
        ("SCI,2", "o4sp040b0_raw.fits", 4),
    ] {
        let (recs, _) = run(&["--force", "--hdu", sel, "--split-cfa", "RGGB", file], d);
        assert_eq!(
            recs[0]["strip-convert"]["fits"]["hdu"], hdu,
            "--hdu {sel}: {recs:?}"
        );
        let res = py_in(
            &py,
            d,
            &format!(
                "a = fits.getdata('{file}', {hdu}); print(np.array_equal(fits.getdata('CFA1_{file}'), a[0::2, 0::2][:a.shape[0] // 2, :a.shape[1] // 2]))"
            ),
        );
        assert_eq!(res.trim(), "True", "--hdu {sel}");
    }
    for (sel, want) in [
        ("ERR", "no 2-D image"),
        ("SCI,9", "EXTVER"),
        ("NOPE", "no HDU"),
    ] {
        let (recs, out) = run(
            &[
                "--force",
                "--hdu",
                sel,
                "--split-cfa",
                "RGGB",
                "o4sp040b0_raw.fits",
            ],
            d,
        );
        assert_eq!(out.status.code(), Some(1));
        let msg = recs[0]["error"]["message"].as_str().unwrap_or_default();
        assert!(msg.contains(want), "--hdu {sel}: {msg}");
    }
}

#[test]
fn a_stack_of_frames_twenty_times_the_budget_stays_under_it_with_the_same_result() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
        let mut cmd = tool();
        cmd.current_dir(d)
            .args(["--stack", "median", "--output", name, "-m", m])
            .args(&files);
        let meas = testkit::Cmd::from(cmd).run_own_peak();
        meas.check();
        let rec = &meas.records()[0]["strip-convert"];
        outs.push(rec["rows_per_block"].as_u64().unwrap());
        if m == "24MiB" {
            assert!(
                meas.child_peak(rec) <= budget,
                "peak {} MiB over the 24 MiB budget",
                meas.child_peak(rec) >> 20
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
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
        let (recs, out) = run(&args, d);
        assert!(
            out.status.success(),
            "{method}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
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
    k = med[0] / med; cube = cube * k[:, None, None]
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
    let (recs, _) = run(&args, d);
    assert!(!d.join("med.fits").exists());
    assert!(
        recs.iter()
            .any(|r| r["error"]["message"].to_string().contains("--weighted")),
        "{recs:?}"
    );
}

#[test]
fn the_fits_stack_cost_model_is_within_20_percent_of_the_measured_peak() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
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
        let mut cmd = tool();
        cmd.current_dir(d)
            .args(["--force", "--stack", "sigma-clip", "--output", "st.fits"])
            .args(["-m", &format!("{limit_mib}MiB")])
            .args(&files);
        let meas = testkit::Cmd::from(cmd).run_own_peak();
        meas.check();
        let s = &meas.records()[0]["strip-convert"];
        let peak = meas.child_peak(s);
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

/// `--compress`: every output (CFA planes of each BITPIX, normalised frames, stacks and
/// rejection maps) is a CompImageHDU astropy reads back bit for bit, NaN included; a
/// floating-point image is never quantised unless `--quantize` asks for it.
#[test]
fn compressed_outputs_read_back_bit_identical_for_every_bitpix() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(17)
types = {'u8': np.uint8, 'i16': np.int16, 'u16': np.uint16, 'i32': np.int32, 'i64': np.int64, 'f32': np.float32, 'f64': np.float64}
os.makedirs('in', exist_ok=True)
for i, (k, t) in enumerate(types.items()):
    h, w = 9 + 2 * (i % 2), 12 + (i % 3)
    if k == 'u8': a = rng.integers(0, 256, (h, w)).astype(t)
    elif k[0] == 'f':
        a = rng.normal(1000, 300, (h, w)).astype(t); a[1, 2] = np.nan; a[3, 0] = -0.0; a[4, 4] = np.inf
    elif k == 'u16': a = rng.integers(0, 65536, (h, w)).astype(t)
    else: a = rng.integers(np.iinfo(t).min // 2, np.iinfo(t).max // 2, (h, w)).astype(t)
    fits.writeto(f'in/{k}.fits', a, overwrite=True)
s = fits.PrimaryHDU(rng.integers(-3000, 3000, (8, 11)).astype(np.int16))
s.header['BSCALE'] = 0.25; s.header['BZERO'] = 100.5
s.writeto('in/scaled.fits', overwrite=True)
y, x = np.mgrid[0:31, 0:37]
for i in range(7):
    a = 500 + x + y + 30 * i + rng.normal(0, 8, x.shape)
    a[rng.random(x.shape) < 0.03] += 3000
    a[2, 3 + i] = np.nan
    fits.writeto(f'f{i}.fits', a.astype(np.float32), overwrite=True)
"#,
    );
    let names = ["u8", "i16", "u16", "i32", "i64", "f32", "f64", "scaled"];
    let inputs: Vec<String> = names.iter().map(|n| format!("in/{n}.fits")).collect();
    // Uncompressed, then each algorithm (auto: RICE_1 for integers, GZIP_2 for floats).
    let mut args = vec!["--split-cfa", "RGGB", "-o", "plain"];
    args.extend(inputs.iter().map(String::as_str));
    let (_, out) = run(&args, d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for algo in ["auto", "gzip", "gzip2"] {
        let dest = format!("c-{algo}");
        let mut args = vec!["--split-cfa", "RGGB", "--compress", algo, "-o", &dest];
        args.extend(inputs.iter().map(String::as_str));
        let (recs, out) = run(&args, d);
        // CFITSIO cannot tile-compress 64-bit integers: that input alone is refused,
        // before anything of it is written.
        assert_eq!(out.status.code(), Some(1), "{algo}");
        for r in &recs {
            if r["path"] == "in/i64.fits" {
                let msg = r["error"]["message"].as_str().unwrap_or_default();
                assert!(msg.contains("64-bit"), "{r}");
                assert!(!d.join(format!("{dest}/in/CFA0_i64.fits")).exists());
                continue;
            }
            assert_eq!(r["strip-convert"]["status"], "ok", "{r}");
            let c = &r["strip-convert"]["compression"];
            assert_eq!(c["lossless"], true, "{r}");
            let float = ["f32", "f64"]
                .iter()
                .any(|f| r["path"].as_str().unwrap().contains(f));
            let want = match (algo, float) {
                ("auto", false) => "RICE_1",
                ("auto", true) | ("gzip2", _) => "GZIP_2",
                _ => "GZIP_1",
            };
            assert_eq!(c["algorithm"], want, "{r}");
        }
    }
    // RICE_1 on integers: lossless; on floating point without --quantize: refused, per
    // input, before anything is written.
    let mut args = vec!["--split-cfa", "RGGB", "--compress", "rice", "-o", "c-rice"];
    args.extend(inputs.iter().map(String::as_str));
    let (recs, out) = run(&args, d);
    assert_eq!(out.status.code(), Some(1));
    for r in &recs {
        let p = r["path"].as_str().unwrap();
        if p.contains("f32") || p.contains("f64") || p.contains("i64") {
            let msg = r["error"]["message"].as_str().unwrap();
            assert!(msg.contains("RICE_1") || msg.contains("64-bit"), "{r}");
        } else {
            assert_eq!(r["strip-convert"]["status"], "ok", "{r}");
        }
    }
    assert!(!d.join("c-rice/in/CFA0_f32.fits").exists());
    // Normalised frames and a stack with its rejection map, plain and compressed.
    let frames: Vec<String> = (0..7).map(|i| format!("f{i}.fits")).collect();
    for (tag, extra) in [("plain", vec![]), ("comp", vec!["--compress", "auto"])] {
        let mut args = vec!["--normalize", "addscale", "-o", tag];
        args.extend(extra.iter().copied());
        args.extend(frames.iter().map(String::as_str));
        let (_, out) = run(&args, d);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let (st, rej) = (format!("{tag}/stack.fits"), format!("{tag}/rej.fits"));
        let mut args = vec![
            "--stack",
            "sigma-clip",
            "--normalize",
            "additive",
            // 7 values: one outlier is at most 2.27 sigma from their median.
            "--sigma-low",
            "2",
            "--sigma-high",
            "2",
            "--output",
            &st,
            "--rejection-map",
            &rej,
        ];
        args.extend(extra.iter().copied());
        args.extend(frames.iter().map(String::as_str));
        let (recs, out) = run(&args, d);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(recs[0]["strip-convert"]["status"], "ok", "{:?}", recs);
    }
    let res = py_in(
        &py,
        d,
        r#"
def same(a, b):
    a = np.ascontiguousarray(a, a.dtype.newbyteorder('=')); b = np.ascontiguousarray(b, b.dtype.newbyteorder('='))
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
checked = 0
def comp(path, want):
    global checked
    with fits.open(path) as f:
        assert len(f) == 2 and isinstance(f[1], fits.CompImageHDU), (path, [type(h) for h in f])
        assert same(f[1].data, want), (path, f[1].data, want)
    with fits.open(path, disable_image_compression=True) as f:
        q = f[1].header.get('ZQUANTIZ', 'NONE')
        assert q == 'NONE' or f[1].header['ZBITPIX'] > 0, (path, q)
        raw = fits.getdata(path, 1, do_not_scale_image_data=True)
    checked += 1
    return raw
names = ['u8', 'i16', 'u16', 'i32', 'f32', 'f64', 'scaled']
for algo in ['auto', 'gzip', 'gzip2', 'rice']:
    for n in names:
        if algo == 'rice' and n[0] == 'f': continue
        a = fits.getdata(f'in/{n}.fits'); H, W = a.shape
        araw = fits.getdata(f'in/{n}.fits', do_not_scale_image_data=True)
        for k in range(4):
            dy, dx = 1 - k % 2, k // 2
            want = a[dy::2, dx::2][:H // 2, :W // 2]
            raw = comp(f'c-{algo}/in/CFA{k}_{n}.fits', want)
            assert same(raw, araw[dy::2, dx::2][:H // 2, :W // 2]), (algo, n, k)
            assert same(fits.getdata(f'plain/in/CFA{k}_{n}.fits'), want)
for i in range(7):
    comp(f'comp/norm_f{i}.fits', fits.getdata(f'plain/norm_f{i}.fits'))
comp('comp/stack.fits', fits.getdata('plain/stack.fits'))
comp('comp/rej.fits', fits.getdata('plain/rej.fits'))
h = fits.getheader('comp/stack.fits', 1)
assert h['NCOMBINE'] == 7 and 'sigma-clip stack of 7 frames' in ''.join(h['HISTORY']), repr(h)
r = fits.getdata('plain/rej.fits')
assert r.sum() > 0 and np.isnan(fits.getdata('plain/stack.fits')).sum() == 0
print(checked)
"#,
    );
    assert_eq!(res.trim(), (3 * 7 * 4 + 5 * 4 + 7 + 2).to_string(), "{res}");
}

/// `--quantize Q`: floating-point outputs quantised as fpack does (lossy, within the
/// step), said so in the record and in ZQUANTIZ; integer outputs stay lossless; RICE_1
/// without it on a float output is a usage error.
#[test]
fn quantised_compression_is_lossy_only_when_asked() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(4)
for i in range(5):
    fits.writeto(f'f{i}.fits', rng.normal(1000, 20, (40, 64)).astype(np.float32), overwrite=True)
"#,
    );
    let frames: Vec<String> = (0..5).map(|i| format!("f{i}.fits")).collect();
    let mut args = vec![
        "--stack",
        "mean",
        "--output",
        "q.fits",
        "--compress",
        "auto",
        "--quantize",
        "-0.01",
    ];
    args.extend(frames.iter().map(String::as_str));
    let (recs, out) = run(&args, d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = &recs[0]["strip-convert"]["compression"];
    assert_eq!(
        (c["algorithm"].as_str(), c["lossless"].as_bool()),
        (Some("RICE_1"), Some(false)),
        "{c}"
    );
    let mut args = vec!["--stack", "mean", "--output", "p.fits"];
    args.extend(frames.iter().map(String::as_str));
    assert!(run(&args, d).1.status.success());
    let res = py_in(
        &py,
        d,
        r#"
with fits.open('q.fits') as f:
    assert isinstance(f[1], fits.CompImageHDU)
    q = f[1].data.astype('f8')
with fits.open('q.fits', disable_image_compression=True) as f:
    assert f[1].header['ZQUANTIZ'].startswith('SUBTRACTIVE_DITHER'), f[1].header['ZQUANTIZ']
p = fits.getdata('p.fits').astype('f8')
err = np.max(np.abs(q - p))
print(err, np.array_equal(q, p))
"#,
    );
    let mut it = res.split_whitespace();
    let err: f64 = it.next().unwrap().parse().unwrap();
    assert!(err > 0.0 && err <= 0.01, "absolute step 0.01: {res}");
    assert_eq!(it.next(), Some("False"));
    // RICE_1 on a float output without --quantize: a usage error, nothing written.
    let mut args = vec![
        "--stack",
        "mean",
        "--output",
        "r.fits",
        "--compress",
        "rice",
    ];
    args.extend(frames.iter().map(String::as_str));
    let (_, out) = run(&args, d);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--quantize"));
    assert!(!d.join("r.fits").exists());
    for bad in ["0", "nan", "x"] {
        let (_, out) = run(
            &[
                "--stack",
                "mean",
                "--output",
                "r.fits",
                "--compress",
                "auto",
                "--quantize",
                bad,
                "f0.fits",
            ],
            d,
        );
        assert_eq!(out.status.code(), Some(2), "--quantize {bad}");
    }
}

/// `--split-cfa auto`: the planes' colours from BAYERPAT, ROWORDER (BOTTOM-UP flips the
/// rows of an even-height image) and XBAYROFF/YBAYROFF, against a colour-by-position
/// formula written here; the Bayer keywords are removed and HISTORY says what was done.
#[test]
fn auto_pattern_follows_bayerpat_roworder_and_offsets() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    let cases = py_in(
        &py,
        d,
        r#"
cases = {'none': (8, 'RGGB', None, 0, 0), 'td': (8, 'BGGR', 'TOP-DOWN', 0, 0),
         'bu': (8, 'RGGB', 'BOTTOM-UP', 0, 0), 'buodd': (9, 'GRBG', 'BOTTOM-UP', 0, 0),
         'xoff': (8, 'RGGB', 'TOP-DOWN', 1, 0), 'yoff': (6, 'GBRG', None, 0, 1)}
for n, (h, pat, ro, xo, yo) in cases.items():
    p = fits.PrimaryHDU(np.arange(h * 10, dtype=np.uint16).reshape(h, 10))
    p.header['BAYERPAT'] = pat
    if ro: p.header['ROWORDER'] = ro
    if xo: p.header['XBAYROFF'] = xo
    if yo: p.header['YBAYROFF'] = yo
    p.writeto(n + '.fits', overwrite=True)
print(' '.join(cases))
"#,
    );
    let names: Vec<&str> = cases.split_whitespace().collect();
    let mut args = vec!["--split-cfa", "auto"];
    let files: Vec<String> = names.iter().map(|n| format!("{n}.fits")).collect();
    args.extend(files.iter().map(String::as_str));
    let (recs, out) = run(&args, d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(recs.len(), names.len());
    let res = py_in(
        &py,
        d,
        r#"
import glob
bad = []
for f in sorted(glob.glob('[a-z]*.fits')):
    n = f[:-5]; h0 = fits.getheader(f); H = h0['NAXIS2']; pat = h0['BAYERPAT']
    bu = h0.get('ROWORDER', 'TOP-DOWN') == 'BOTTOM-UP'
    def colour(y, x):
        # The pattern's row 0 is the top row as shown: stored row 0, or the last one
        # for BOTTOM-UP; the offsets shift it.
        yd = (H - 1 - y) if bu else y
        return pat[2 * ((yd + h0.get('YBAYROFF', 0)) % 2) + (x + h0.get('XBAYROFF', 0)) % 2]
    a = fits.getdata(f)
    for k in range(4):
        dy, dx = 1 - k % 2, k // 2
        with fits.open(f'CFA{k}_{n}.fits') as g:
            hd = g[0].header
            if hd['FILTER'] != colour(dy, dx): bad.append((n, k, hd['FILTER'], colour(dy, dx)))
            if not np.array_equal(g[0].data, a[dy::2, dx::2][:H // 2]): bad.append((n, k, 'data'))
            if any(key in hd for key in ('BAYERPAT', 'XBAYROFF', 'YBAYROFF')): bad.append((n, k, 'keys'))
            if f'CFA{k}' not in str(hd['HISTORY']): bad.append((n, k, 'history'))
print(bad or 'ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
}

/// Our CFA planes are Siril's: siril-cli's `split_cfa` on the same frames writes files of
/// the same names holding the same values (skipped when siril-cli is not installed).
#[test]
fn cfa_planes_are_siril_split_cfa_planes() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    if Command::new("siril-cli").arg("--version").output().is_err() {
        eprintln!("skipped: siril-cli not installed");
        return;
    }
    let dir = testkit::tempdir();
    let d = dir.path();
    std::fs::create_dir_all(d.join("siril")).unwrap();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(8)
for n, (h, w) in {'even': (12, 16), 'odd': (11, 15)}.items():
    a = rng.integers(0, 65536, (h, w)).astype(np.uint16)
    fits.writeto(f'{n}.fits', a, overwrite=True)
    fits.writeto(f'siril/{n}.fits', a, overwrite=True)
"#,
    );
    let (_, out) = run(&["--split-cfa", "RGGB", "even.fits", "odd.fits"], d);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = d.join("split.ssf");
    std::fs::write(
        &script,
        "requires 1.0.0\nsetext fits\nload even\nsplit_cfa\nload odd\nsplit_cfa\n",
    )
    .unwrap();
    let st = Command::new("siril-cli")
        .arg("-d")
        .arg(d.join("siril"))
        .arg("-s")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stdout)
    );
    let res = py_in(
        &py,
        d,
        r#"
bad = []
for n in ['even', 'odd']:
    for k in range(4):
        ours, theirs = fits.getdata(f'CFA{k}_{n}.fits'), fits.getdata(f'siril/CFA{k}_{n}.fits')
        if ours.dtype != theirs.dtype or not np.array_equal(ours, theirs): bad.append((n, k))
print(bad or 'ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
}

/// Frames are split side by side (`-j 2`, four in flight): records come in input order,
/// each frame's planes are its own (numpy slicing), and of two inputs whose outputs are
/// named alike (`f0.fits` and `f0.fit` both make `CFA0_f0.fits`), the first in order
/// keeps them and the second gets an error record, whichever finishes first.
#[test]
fn frames_split_side_by_side_keep_input_order_and_first_claims() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(4)
# f0.fits is large, so that f0.fit (small, after it) would finish first.
for name, (h, w) in [('f0.fits', (900, 700)), ('f1.fits', (10, 12)), ('f2.fits', (31, 17)), ('f0.fit', (6, 8)), ('f3.fits', (12, 9))]:
    fits.writeto(name, rng.integers(0, 65536, (h, w)).astype(np.uint16), overwrite=True)
"#,
    );
    let inputs = ["f0.fits", "f1.fits", "f2.fits", "f0.fit", "f3.fits"];
    let mut args = vec!["-j", "2", "--split-cfa", "RGGB"];
    args.extend(inputs);
    let (recs, out) = run(&args, d);
    assert_eq!(out.status.code(), Some(1), "one input fails");
    let paths: Vec<&str> = recs.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, inputs, "records in input order");
    for (r, name) in recs.iter().zip(inputs) {
        let s = &r["strip-convert"];
        if name == "f0.fit" {
            let msg = r["error"]["message"].as_str().unwrap_or_default();
            assert!(msg.contains("already the output of f0.fits"), "{r}");
        } else {
            assert_eq!(s["status"], "ok", "{r}");
        }
    }
    let res = py_in(
        &py,
        d,
        r#"
bad = []
for name in ['f0', 'f1', 'f2', 'f3']:
    a = fits.getdata(name + '.fits'); H, W = a.shape
    for k in range(4):
        # Siril's numbering, as above: CFA0 = data[1::2, 0::2], ...
        r, c = 1 - k % 2, k // 2
        want = a[r::2, c::2][:H // 2, :W // 2]
        if not np.array_equal(fits.getdata(f'CFA{k}_{name}.fits'), want): bad.append((name, k))
left = [f for f in os.listdir('.') if f.endswith('.part')]
print(bad or left or 'ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
}

/// The cube rule: `--plane N` reads plane N of a cube (astropy's
/// `data.reshape(-1, NAXIS2, NAXIS1)[N]`, NAXIS4 included) for every operation, and the
/// outputs say which plane; without it, or with a plane not there, a cube is refused
/// before anything is written.
#[test]
fn a_cube_is_read_plane_by_plane_with_plane_n_or_refused_before_writing() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let d = dir.path();
    std::fs::copy(testkit::data("fits/arange.fits"), d.join("arange.fits")).unwrap();
    py_in(
        &py,
        d,
        r#"
rng = np.random.default_rng(23)
for i in range(3):
    fits.writeto(f'c{i}.fits', rng.normal(100, 20, (5, 9, 13)).astype(np.float32), overwrite=True)
fits.writeto('h4.fits', rng.integers(0, 60000, (2, 3, 9, 13)).astype(np.uint16), overwrite=True)
"#,
    );
    // CFA split of plane 3 of the int32 cube and of plane 4 (NAXIS3 = 3: [1][1]) of a
    // 4-D uint16 (BZERO) one: bit-equal to numpy slicing of astropy's planes.
    for (file, plane) in [("arange.fits", "3"), ("h4.fits", "4")] {
        let (recs, out) = run(&["--plane", plane, "--split-cfa", "RGGB", file], d);
        assert!(out.status.success(), "{recs:?}");
        assert_eq!(recs[0]["strip-convert"]["status"], "ok", "{recs:?}");
    }
    // Normalisation and a stack of plane 1 of three cubes.
    let (recs, out) = run(
        &[
            "--plane",
            "1",
            "--normalize",
            "additive",
            "--reference",
            "c0.fits",
            "c2.fits",
        ],
        d,
    );
    assert!(out.status.success(), "{recs:?}");
    let (recs, out) = run(
        &[
            "--plane", "1", "--stack", "median", "--output", "med.fits", "c0.fits", "c1.fits",
            "c2.fits",
        ],
        d,
    );
    assert!(out.status.success(), "{recs:?}");
    let res = py_in(
        &py,
        d,
        r#"
for n, p in [('arange', 3), ('h4', 4)]:
    src = fits.getdata(n + '.fits'); a = src.reshape(-1, *src.shape[-2:])[p]; H, W = a.shape
    for k in range(4):
        dy, dx = 1 - k % 2, k // 2
        h = fits.open(f'CFA{k}_{n}.fits')[0]
        assert h.header['NAXIS'] == 2 and h.data.dtype == a.dtype, (n, k, h.header['NAXIS'], h.data.dtype)
        assert np.array_equal(h.data, a[dy::2, dx::2][:H // 2, :W // 2]), (n, k)
        assert any(f'plane {p} (from 0)' in str(c) for c in h.header['HISTORY']), (n, k)
c = [fits.getdata(f'c{i}.fits')[1].astype(np.float64) for i in range(3)]
norm = fits.getdata('norm_c2.fits')
want = c[2] - (np.median(c[2]) - np.median(c[0]))
assert np.allclose(norm, want, rtol=1e-6, atol=0), np.abs(norm - want).max()
med = fits.getdata('med.fits')
assert med.shape == (9, 13) and np.allclose(med, np.median(np.stack(c), 0), rtol=1e-6, atol=0)
print('ok')
"#,
    );
    assert_eq!(res.trim(), "ok");
    // Refused, nothing written: a cube without --plane (a stack and a split), a plane
    // past the cube's last.
    for (args, want) in [
        (
            vec![
                "--stack", "mean", "--output", "s.fits", "c0.fits", "c1.fits",
            ],
            "give --plane N",
        ),
        (vec!["--split-cfa", "RGGB", "c1.fits"], "cube of 5 planes"),
        (
            vec![
                "--plane",
                "7",
                "--split-cfa",
                "RGGB",
                "c1.fits",
                "arange.fits",
            ],
            "has 7 plane(s)",
        ),
    ] {
        let (recs, out) = run(&args, d);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {recs:?}");
        assert!(
            recs.iter().any(|r| r.to_string().contains(want)),
            "{args:?}: {recs:?}"
        );
    }
    assert!(!d.join("s.fits").exists());
    assert!(!d.join("CFA0_c1.fits").exists());
}

/// A frame whose name is not UTF-8 (Latin-1 `\xe9`) gives CFA planes and a normalised
/// copy whose names keep its bytes, not a U+FFFD that another name could share.
#[test]
fn frame_names_that_are_not_utf8_keep_their_bytes() {
    let dir = testkit::tempdir();
    let d = dir.path();
    let name = testkit::latin1_name("light_", ".fits");
    std::fs::copy(testkit::data("fits/fixed-1890.fits"), d.join(&name)).unwrap();
    let out = tool()
        .current_dir(d)
        .args(["--split-cfa", "RGGB"])
        .arg(&name)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = tool()
        .current_dir(d)
        .args(["--normalize", "additive"])
        .arg(&name)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for prefix in ["CFA0_", "CFA1_", "CFA2_", "CFA3_", "norm_"] {
        let want = d.join(testkit::latin1_name(&format!("{prefix}light_"), ".fits"));
        assert!(want.is_file(), "{} missing", want.display());
    }
}
