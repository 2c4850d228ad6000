//! `tile-enhance spots` against code no one here wrote: scipy.ndimage's
//! `gaussian_laplace` + `maximum_filter` (the detector), big-fish's
//! `detect_spots` (the automatic threshold), scikit-image's `blob_log` (a real star field)
//! and numpy indexing (the readout).

mod spots_util;

use spots_util::*;

/// Responses and maxima by scipy, same edge rule (reflect), compared with ours: the same
/// spots, except where scipy's own response is within float rounding of the threshold or
/// of a neighbour (we compute in f32, scipy in f64).
const SCIPY_REF: &str = r#"
import sys, numpy as np, tifffile
from scipy import ndimage as ndi
img = tifffile.imread(sys.argv[1]).astype(np.float64)
s, d, t, csv = float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
r = -ndi.gaussian_laplace(img, s) * s * s
mx = ndi.maximum_filter(r, size=2 * d + 1, mode='reflect')
ref = set(zip(*[a.tolist() for a in np.nonzero((r == mx) & (r > t))]))
rows = np.loadtxt(csv, delimiter=',', skiprows=1, ndmin=2)
ours = set((int(a), int(b)) for a, b in rows[:, :2])
eps = 1e-4 * max(1.0, np.abs(r).max())
def doubtful(p):
    y, x = p
    if abs(r[y, x] - t) < eps:
        return True
    w = r[max(0, y - d):y + d + 1, max(0, x - d):x + d + 1]
    return np.sum(np.abs(w - r[y, x]) < eps) > 1
bad = [p for p in ref ^ ours if not doubtful(p)]
worst = max(abs(r[int(a), int(b)] - v) / max(1.0, abs(v)) for a, b, v in rows[:, [0, 1, 3]]) if len(rows) else 0
print(len(ref), len(ours), len(bad), worst, bad[:5])
"#;

#[test]
fn detections_equal_scipy_gaussian_laplace_maxima() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "scipy", "tifffile"]) else {
        return;
    };
    for (seed, sigma, d, t) in [
        (1u64, 1.5, 2u32, 30.0),
        (2, 2.0, 3, 50.0),
        (3, 1.0, 1, 20.0),
        (4, 2.7, 2, 60.0),
    ] {
        let sc = scene(
            seed,
            150,
            120,
            60,
            &[(0.0, 0.0), (119.0, 149.0), (60.0, 0.0)],
        );
        let img = dir.path().join(format!("s{seed}.tif"));
        write_gray16(&img, 150, 120, &[&sc.pixels]);
        let rec = spots_ok(&[
            "--sigma",
            &sigma.to_string(),
            "-d",
            &d.to_string(),
            "-t",
            &t.to_string(),
            "--tile",
            "40",
            img.to_str().unwrap(),
        ]);
        let csv = rec["spots"]["output"].as_str().unwrap();
        let out = testkit::run_python(
            &py,
            SCIPY_REF,
            &[
                img.to_str().unwrap(),
                &sigma.to_string(),
                &d.to_string(),
                &t.to_string(),
                csv,
            ],
        );
        let f: Vec<&str> = out.trim().splitn(5, ' ').collect();
        let (nref, nours, nbad): (usize, usize, usize) = (
            f[0].parse().unwrap(),
            f[1].parse().unwrap(),
            f[2].parse().unwrap(),
        );
        let worst: f64 = f[3].parse().unwrap();
        eprintln!(
            "seed {seed} sigma {sigma}: scipy {nref}, ours {nours}, response rel. error {worst:e}"
        );
        assert!(nref > 20, "{out}");
        assert_eq!(nbad, 0, "seed {seed}: spots differ from scipy's: {out}");
        assert!(worst < 1e-4, "responses differ from scipy's by {worst}");
    }
}

#[test]
fn automatic_threshold_is_big_fishs() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile", "bigfish.detection"])
    else {
        return;
    };
    for (seed, sigma, d) in [(11u64, 1.5, 2u32), (12, 2.0, 2), (13, 1.2, 1)] {
        let sc = scene(seed, 300, 260, 200, &[]);
        let img = dir.path().join(format!("b{seed}.tif"));
        write_gray16(&img, 300, 260, &[&sc.pixels]);
        let rec = spots_ok(&[
            "--sigma",
            &sigma.to_string(),
            "-d",
            &d.to_string(),
            "--tile",
            "50",
            img.to_str().unwrap(),
        ]);
        let ours = rec["spots"]["threshold_bigfish"].as_f64().unwrap();
        let theirs: f64 = testkit::run_python(
            &py,
            "import sys, warnings, tifffile\n\
             warnings.filterwarnings('ignore')\n\
             from bigfish.detection import detect_spots\n\
             img = tifffile.imread(sys.argv[1])\n\
             _, t = detect_spots(img, return_threshold=True, log_kernel_size=float(sys.argv[2]), minimum_distance=float(sys.argv[3]))\n\
             print(t)",
            &[img.to_str().unwrap(), &sigma.to_string(), &d.to_string()],
        )
        .trim()
        .parse()
        .unwrap();
        eprintln!("seed {seed} sigma {sigma}: threshold ours {ours}, big-fish {theirs}");
        assert!(
            (ours - theirs).abs() <= 0.05 * theirs,
            "seed {seed}: ours {ours}, big-fish {theirs}"
        );
        assert_eq!(rec["spots"]["threshold_method"], "bigfish-elbow");
        let t = rec["spots"]["threshold"].as_f64().unwrap();
        assert!((t - ours * sigma * sigma).abs() < 1e-3 * t);
    }
}

#[test]
fn hubble_deep_field_against_blob_log() {
    let Some(py) = testkit::python(&["numpy", "skimage"]) else {
        return;
    };
    let img = testkit::data("images/hubble_deep_field.jpg");
    let dir = testkit::tempdir();
    let (sigma, t) = (2.0, 0.1);
    // blob_log works on img_as_float (0..1): its threshold 0.1 is 25.5 in sample units.
    let rec = spots_ok(&[
        "--sigma",
        "2",
        "-d",
        "1",
        "-t",
        &(t * 255.0).to_string(),
        "-o",
        dir.path().to_str().unwrap(),
        img.to_str().unwrap(),
    ]);
    let csv = rec["spots"]["output"].as_str().unwrap();
    let out = testkit::run_python(
        &py,
        "import sys, numpy as np\n\
         from skimage import io\n\
         from skimage.feature import blob_log\n\
         img = io.imread(sys.argv[1])\n\
         img = img[..., 0] if img.ndim == 3 else img\n\
         b = blob_log(img, min_sigma=float(sys.argv[2]), max_sigma=float(sys.argv[2]), num_sigma=1, threshold=float(sys.argv[3]), exclude_border=False)\n\
         ours = np.loadtxt(sys.argv[4], delimiter=',', skiprows=1, ndmin=2)[:, :2]\n\
         d = np.sqrt(((b[:, None, :2] - ours[None, :, :]) ** 2).sum(-1)) if len(b) and len(ours) else np.zeros((len(b), len(ours)))\n\
         tp_theirs = int((d.min(1) <= 1.5).sum()) if d.size else 0\n\
         tp_ours = int((d.min(0) <= 1.5).sum()) if d.size else 0\n\
         print(len(b), len(ours), tp_ours / max(1, len(ours)), tp_theirs / max(1, len(b)))",
        &[img.to_str().unwrap(), &sigma.to_string(), &t.to_string(), csv],
    );
    let f: Vec<f64> = out.split_whitespace().map(|v| v.parse().unwrap()).collect();
    eprintln!(
        "hubble_deep_field: blob_log {} stars, ours {}; precision {:.3}, recall {:.3} (ours vs blob_log)",
        f[0], f[1], f[2], f[3]
    );
    assert!(f[0] > 50.0, "{out}");
    assert!(f[2] >= 0.95 && f[3] >= 0.95, "{out}");
}

#[test]
fn readout_equals_numpy_indexing() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["numpy", "tifffile"]) else {
        return;
    };
    let (w, h) = (90u32, 70u32);
    let a = scene(21, w, h, 40, &[(0.0, 0.0), (69.0, 89.0), (35.0, 0.0)]);
    let b = scene(22, w, h, 10, &[]);
    let c = scene(23, w, h, 10, &[]);
    let rgb = dir.path().join("rgb.tif");
    write_rgb16(&rgb, w, h, [&a.pixels, &b.pixels, &c.pixels]);
    let pages = dir.path().join("pages.tif");
    write_gray16(&pages, w, h, &[&b.pixels, &a.pixels]);
    let extra = dir.path().join("extra.tif");
    write_gray16(&extra, w, h, &[&c.pixels]);
    let check = "import sys, numpy as np, tifffile\n\
                 how, csv = sys.argv[1], sys.argv[2]\n\
                 chans = [tifffile.imread(p).astype(np.float64) for p in sys.argv[3:]]\n\
                 lines = open(csv).read().splitlines()\n\
                 head = lines[0].split(',')\n\
                 rows = [l.split(',') for l in lines[1:]]\n\
                 assert len(rows) > 10, len(rows)\n\
                 k = head.index('response') + 1\n\
                 bad = 0\n\
                 for r in rows:\n\
                 \x20   y, x = int(r[0]), int(r[1])\n\
                 \x20   for i, ch in enumerate(chans):\n\
                 \x20       if how == 'pixel':\n\
                 \x20           want = ch[y, x]\n\
                 \x20       else:\n\
                 \x20           R = int(how.split(':')[1])\n\
                 \x20           yy, xx = np.mgrid[0:ch.shape[0], 0:ch.shape[1]]\n\
                 \x20           disc = ch[(yy - y) ** 2 + (xx - x) ** 2 <= R * R]\n\
                 \x20           want = disc.mean() if how.startswith('mean') else disc.max()\n\
                 \x20       if abs(float(r[k + i]) - want) > 1e-9 * max(1, abs(want)):\n\
                 \x20           bad += 1\n\
                 print(len(rows), bad)";
    let sep = |name: &str| {
        let p = dir.path().join(name);
        let arr: &[u16] = match name {
            "a.tif" => &a.pixels,
            "b.tif" => &b.pixels,
            _ => &c.pixels,
        };
        write_gray16(&p, w, h, &[arr]);
        p.to_str().unwrap().to_string()
    };
    let (pa, pb, pc) = (sep("a.tif"), sep("b.tif"), sep("c.tif"));
    for how in ["pixel", "mean:2", "max:3"] {
        // Bands of one TIFF: c0 c1 c2.
        let o = dir.path().join(format!("o1{}", how.replace(':', "")));
        let rec = spots_ok(&[
            "--sigma",
            "1.5",
            "-t",
            "40",
            "--tile",
            "25",
            "--readout",
            how,
            "-o",
            o.to_str().unwrap(),
            rgb.to_str().unwrap(),
        ]);
        let csv = rec["spots"]["output"].as_str().unwrap().to_string();
        let out = testkit::run_python(&py, check, &[how, &csv, &pa, &pb, &pc]);
        assert!(out.trim().ends_with(" 0"), "bands, {how}: {out}");
        // Pages: detect on the second page (c1), read both; plus a separate file.
        let o = dir.path().join(format!("o2{}", how.replace(':', "")));
        let rec = spots_ok(&[
            "--sigma",
            "1.5",
            "-t",
            "40",
            "--tile",
            "25",
            "--readout",
            how,
            "--detect-on",
            "c1",
            "--channel",
            &format!("dapi={}", extra.display()),
            "-o",
            o.to_str().unwrap(),
            pages.to_str().unwrap(),
        ]);
        let csv = rec["spots"]["output"].as_str().unwrap().to_string();
        assert!(std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("y,x,sigma,response,c0,c1,dapi\n"));
        let out = testkit::run_python(&py, check, &[how, &csv, &pb, &pa, &pc]);
        assert!(out.trim().ends_with(" 0"), "pages, {how}: {out}");
        // Detecting on a separate file's channel.
        let o = dir.path().join(format!("o3{}", how.replace(':', "")));
        let rec = spots_ok(&[
            "--sigma",
            "1.5",
            "-t",
            "40",
            "--readout",
            how,
            "--detect-on",
            "spots",
            "--channel",
            &format!("spots={pa}"),
            "-o",
            o.to_str().unwrap(),
            &pb,
        ]);
        assert_eq!(rec["spots"]["detect_on"], "spots");
        let csv = rec["spots"]["output"].as_str().unwrap().to_string();
        let out = testkit::run_python(&py, check, &[how, &csv, &pb, &pa]);
        assert!(out.trim().ends_with(" 0"), "separate file, {how}: {out}");
    }
}
