//! laz-enrich end to end: real processes on the shared sample clouds, outputs read back
//! with laspy and features checked against jakteristics.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

fn tool() -> testkit::Cmd {
    testkit::tool("laz-enrich")
}

fn run(args: &[&str]) -> (Output, Vec<Value>) {
    let ran = tool().args(args).run();
    let records = ran.records();
    (ran.output(), records)
}

fn section(r: &Value) -> &Value {
    &r["laz-enrich"]
}

fn ign(name: &str) -> PathBuf {
    testkit::data(&format!("laz/ign/{name}"))
}

/// Check an output against its input with laspy (every input byte kept, one Extra
/// Bytes VLR, the new dimensions by name) and against jakteristics (same radius).
const CHECK: &str = r#"
import sys, numpy as np, laspy, jakteristics
inp, out, r = sys.argv[1], sys.argv[2], float(sys.argv[3])
names = sys.argv[4].split(",")
a = laspy.read(inp); b = laspy.read(out)
assert len(a.points) == len(b.points), (len(a.points), len(b.points))
# Every input byte of every point, in order: the output record is the input record
# followed by 4 bytes per new dimension.
ra = a.points.array.view(np.uint8).reshape(len(a.points), -1)
rb = b.points.array.view(np.uint8).reshape(len(b.points), -1)
assert rb.shape[1] == ra.shape[1] + 4 * len(names), (ra.shape, rb.shape)
assert np.array_equal(ra, rb[:, : ra.shape[1]]), "input bytes changed"
eb = [v for v in b.header.vlrs if v.user_id == "LASF_Spec" and v.record_id == 4]
assert len(eb) == 1, f"{len(eb)} Extra Bytes VLRs"
assert not any(v.user_id == "copc" for v in b.header.vlrs)
assert list(b.point_format.extra_dimension_names)[-len(names):] == names
xyz = np.ascontiguousarray(a.xyz)
j = jakteristics.compute_features(xyz, r, feature_names=names, num_threads=2)
J = {n: j[:, i].astype(np.float64) for i, n in enumerate(names)}
M = {n: np.asarray(b[n], dtype=np.float64) for n in names}
same_n = J["number_of_neighbors"] == M["number_of_neighbors"]
ok = (J["number_of_neighbors"] >= 3) & same_n
assert ok.sum() > 0.8 * len(xyz), ("too few comparable points", ok.sum())
# Counts may differ only on exact ties at distance r (coordinates on a 1 cm grid).
assert (~same_n).sum() <= 0.002 * len(xyz), (~same_n).sum()
worst = {}
# jakteristics pairs eigenvectors with eigenvalues by a 1e-5 tolerance, which mixes them
# up when l2 < 1e-5 (nearly collinear neighbourhoods): vectors are compared elsewhere.
vec_ok = ok & (M["eigenvalue2"] >= 1e-5)
for n in ["planarity", "linearity", "sphericity", "verticality", "eigenvalue1", "eigenvalue2", "eigenvalue3"]:
    sel = vec_ok if n == "verticality" else ok
    e = np.abs(J[n][sel] - M[n][sel])
    both_nan = np.isnan(J[n][sel]) & np.isnan(M[n][sel])
    worst[n] = float(np.max(np.where(both_nan, 0.0, e)))
nj = np.stack([J["nx"], J["ny"], J["nz"]], 1)[vec_ok]
nm = np.stack([M["nx"], M["ny"], M["nz"]], 1)[vec_ok]
l1, l2, l3 = M["eigenvalue1"][vec_ok], M["eigenvalue2"][vec_ok], M["eigenvalue3"][vec_ok]
# A normal is defined up to sign, and only where l3 is a simple eigenvalue.
well = (l2 - l3) > 1e-3 * l1
worst["normal"] = float(1 - np.abs((nj * nm).sum(1))[well].min())
nz = M["nz"][ok]
assert ((nz >= 0) | np.isnan(nz)).all(), "normals not oriented up"
# No normal only where the neighbourhood is a line (l2 = 0 up to rounding).
undefined = ok & np.isnan(M["nz"])
assert (M["eigenvalue2"][undefined] <= 1e-9 * M["eigenvalue1"][undefined]).all(), "NaN normals off a line"
print(worst)
bad = {k: v for k, v in worst.items() if not v <= 1e-4}
assert not bad, bad
"#;

const NAMES: &str = "planarity,linearity,sphericity,verticality,eigenvalue1,eigenvalue2,eigenvalue3,nx,ny,nz,number_of_neighbors";

#[test]
fn features_match_jakteristics_across_tile_borders() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs", "jakteristics"]) else {
        return;
    };
    let input = ign("test_data_77050_627755_LA93_IGN69.laz");
    let out_dir = dir.path().join("out");
    // Small tiles: most points' neighbourhoods are cut by some tile border.
    let (out, recs) = run(&[
        "-F",
        NAMES,
        "--tile-points",
        "15000",
        "-o",
        out_dir.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich");
    let s = section(&recs[0]);
    assert_eq!(s["status"], "ok", "{:?}", recs[0]);
    assert!(s["tiles"].as_u64().unwrap() >= 4, "{s}");
    assert!(s["halo_points"].as_u64().unwrap() > 0, "{s}");
    let output = s["output"].as_str().unwrap();
    assert!(output.ends_with("test_data_77050_627755_LA93_IGN69.enriched.laz"));
    testkit::run_python(&py, CHECK, &[input.to_str().unwrap(), output, "1.0", NAMES]);
}

#[test]
fn copc_and_old_versions_read_back() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs", "jakteristics"]) else {
        return;
    };
    for (name, r) in [
        ("laz/autzen.copc.laz", "5.0"),
        ("laz/32-1-472-150-76.laz", "1.0"),
    ] {
        let input = testkit::data(name);
        let (out, recs) = run(&[
            "-F",
            NAMES,
            "-R",
            r,
            "-o",
            dir.path().to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        testkit::check(&out, "laz-enrich");
        let output = section(&recs[0])["output"].as_str().unwrap().to_string();
        if name.contains("copc") {
            // autzen.copc.laz has too few points for 80% to have 3 neighbours: check
            // the read-back only.
            let code = r#"
import sys, laspy, numpy as np
a = laspy.read(sys.argv[1]); b = laspy.read(sys.argv[2])
assert len(a.points) == len(b.points)
for d in a.point_format.dimension_names:
    assert np.array_equal(np.asarray(a[d]), np.asarray(b[d])), d
assert "planarity" in list(b.point_format.extra_dimension_names)
assert not any(v.user_id == "copc" for v in b.header.vlrs)
"#;
            testkit::run_python(&py, code, &[input.to_str().unwrap(), &output]);
        } else {
            testkit::run_python(&py, CHECK, &[input.to_str().unwrap(), &output, r, NAMES]);
        }
    }
}

#[test]
fn a_tiny_budget_gives_the_same_bits_as_a_huge_one() {
    let dir = testkit::tempdir();
    let input = ign("test_data_77060_627755_LA93_IGN69.laz");
    let mut outputs = Vec::new();
    let mut tiles = Vec::new();
    for (sub, limit) in [("huge", "8GiB"), ("tiny", "23MiB")] {
        let out_dir = dir.path().join(sub);
        let (out, recs) = run(&[
            "-F",
            "all",
            "-m",
            limit,
            "-o",
            out_dir.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        testkit::check(&out, "laz-enrich");
        let s = section(&recs[0]);
        assert_eq!(s["status"], "ok", "{:?}", recs[0]);
        tiles.push(s["tiles"].as_u64().unwrap());
        outputs.push(std::fs::read(s["output"].as_str().unwrap()).unwrap());
    }
    assert_eq!(tiles[0], 1, "a huge budget holds the file in one tile");
    assert!(tiles[1] >= 2, "a tiny budget cuts it: {tiles:?}");
    assert!(outputs[0] == outputs[1], "outputs differ between budgets");
}

#[test]
fn peak_rss_stays_under_the_budget_and_near_the_model() {
    let dir = testkit::tempdir();
    let input = ign("las_with_several_extra_byte_bloc.laz");
    for limit_mib in [18u64, 24, 40] {
        let (out, recs) = run(&[
            "-m",
            &format!("{limit_mib}MiB"),
            "-o",
            dir.path().join(limit_mib.to_string()).to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        testkit::check(&out, "laz-enrich");
        let s = section(&recs[0]);
        let peak = s["peak_rss"].as_u64().unwrap();
        let predicted = s["predicted_peak"].as_u64().unwrap();
        assert!(
            peak <= limit_mib << 20,
            "peak {peak} over the {limit_mib} MiB budget: {s}"
        );
        assert!(s["tiles"].as_u64().unwrap() > 1, "{s}");
        // The cost model (membudget::cost::laz_features) within 20% of the measurement.
        let err = (predicted as f64 - peak as f64).abs() / peak as f64;
        assert!(err <= 0.2, "predicted {predicted}, measured {peak}: {s}");
    }
}

#[test]
fn neighbour_files_give_the_features_of_the_merged_cloud() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs"]) else {
        return;
    };
    let tiles_dir = dir.path().join("tiles");
    std::fs::create_dir_all(&tiles_dir).unwrap();
    let names: Vec<String> = [
        "77050_627755",
        "77050_627760",
        "77055_627755",
        "77055_627760",
        "77060_627755",
        "77060_627760",
    ]
    .iter()
    .map(|t| format!("test_data_{t}_LA93_IGN69.laz"))
    .collect();
    for n in &names {
        std::fs::copy(ign(n), tiles_dir.join(n)).unwrap();
    }
    let merged = dir.path().join("merged.laz");
    let merge = r#"
import sys, numpy as np, laspy
files, out = sys.argv[2:], sys.argv[1]
first = laspy.read(files[0])
arrays = [laspy.read(f).points.array for f in files]
first.points = laspy.ScaleAwarePointRecord(np.concatenate(arrays), first.point_format, first.header.scales, first.header.offsets)
first.write(out)
"#;
    let mut args = vec![merged.to_str().unwrap().to_string()];
    args.extend(
        names
            .iter()
            .map(|n| tiles_dir.join(n).to_string_lossy().into_owned()),
    );
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    testkit::run_python(&py, merge, &argv);

    let feats = "planarity,linearity,nz,number_of_neighbors,eigenvalue3";
    let out_dir = dir.path().join("out");
    let (out, recs) = run(&[
        "-F",
        feats,
        "-o",
        out_dir.to_str().unwrap(),
        merged.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich merged");
    let merged_out = section(&recs[0])["output"].as_str().unwrap().to_string();
    let recs = tool()
        .args(["-F", feats, "--neighbours"])
        .arg(&tiles_dir)
        .arg("-o")
        .arg(&out_dir)
        .args(names.iter().map(|n| tiles_dir.join(n)))
        .ok()
        .records();
    assert_eq!(recs.len(), 6);
    let mut outputs = Vec::new();
    for r in &recs {
        let s = section(r);
        assert_eq!(s["status"], "ok", "{r}");
        assert!(s["neighbour_files"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["neighbour_points"].as_u64().unwrap() > 0, "{s}");
        outputs.push(s["output"].as_str().unwrap().to_string());
    }
    // Bit-identical features: the sums are exact integers, so the same neighbourhood
    // gives the same bits whichever file its points came from.
    let compare = r#"
import sys, numpy as np, laspy
merged, feats, outs = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
m = laspy.read(merged)
at = 0
for o in outs:
    b = laspy.read(o)
    n = len(b.points)
    for f in feats:
        x = np.asarray(b[f]); y = np.asarray(m[f])[at:at + n]
        assert np.array_equal(x.view(np.uint32), y.view(np.uint32)), (o, f, np.nanmax(np.abs(x - y)))
    at += n
assert at == len(m.points)
"#;
    let mut argv = vec![merged_out.as_str(), feats];
    argv.extend(outputs.iter().map(String::as_str));
    testkit::run_python(&py, compare, &argv);
    // Without the neighbours, border points differ: the test can tell.
    let alone = dir.path().join("alone");
    let (out, recs) = run(&[
        "-F",
        feats,
        "-o",
        alone.to_str().unwrap(),
        tiles_dir.join(&names[0]).to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich alone");
    let alone_out = section(&recs[0])["output"].as_str().unwrap().to_string();
    let differ = r#"
import sys, numpy as np, laspy
a, b = laspy.read(sys.argv[1]), laspy.read(sys.argv[2])
assert not np.array_equal(np.asarray(a["number_of_neighbors"]), np.asarray(b["number_of_neighbors"]))
"#;
    testkit::run_python(&py, differ, &[&alone_out, &outputs[0]]);
}

#[test]
fn every_sample_cloud_gives_an_output_or_a_clear_error() {
    let dir = testkit::tempdir();
    let mut inputs: Vec<PathBuf> = Vec::new();
    for sub in ["laz", "laz/ign"] {
        for e in std::fs::read_dir(testkit::data(sub)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "laz" || x == "las") {
                inputs.push(p);
            }
        }
    }
    inputs.sort();
    // A LICENSE file: not a cloud, an error record, the others go on.
    inputs.push(testkit::data("laz/LICENSE-las-rs"));
    for (i, input) in inputs.iter().enumerate() {
        let out_dir = dir.path().join(i.to_string());
        let (out, recs) = run(&[
            "-o",
            out_dir.to_str().unwrap(),
            "-F",
            "planarity,number_of_neighbors",
            input.to_str().unwrap(),
        ]);
        assert_eq!(recs.len(), 1, "{}", input.display());
        let r = &recs[0];
        if input.ends_with("LICENSE-las-rs") {
            assert_eq!(r["error"]["kind"], "unsupported", "{r}");
            assert_eq!(out.status.code(), Some(1));
            assert!(!out_dir.exists() || std::fs::read_dir(&out_dir).unwrap().next().is_none());
        } else {
            assert_eq!(section(r)["status"], "ok", "{}: {r}", input.display());
            assert!(Path::new(section(r)["output"].as_str().unwrap()).is_file());
            assert_eq!(out.status.code(), Some(0));
        }
    }
}

#[test]
fn truncated_or_corrupt_laz_is_an_error_record_and_leaves_no_output() {
    let dir = testkit::tempdir();
    let src = std::fs::read(ign("test_data_77055_627760_LA93_IGN69.laz")).unwrap();
    let truncated = dir.path().join("truncated.laz");
    std::fs::write(&truncated, &src[..src.len() / 2]).unwrap();
    let corrupt = dir.path().join("corrupt.laz");
    let mut bad = src.clone();
    let mid = bad.len() / 2;
    for b in &mut bad[mid..mid + 4096] {
        *b = b.wrapping_mul(31).wrapping_add(7);
    }
    std::fs::write(&corrupt, &bad).unwrap();
    let header_only = dir.path().join("header-only.laz");
    std::fs::write(&header_only, &src[..200]).unwrap();
    for input in [&truncated, &corrupt, &header_only] {
        let out_dir = dir.path().join("out");
        let (out, recs) = run(&["-o", out_dir.to_str().unwrap(), input.to_str().unwrap()]);
        assert_eq!(recs.len(), 1);
        let kind = recs[0]["error"]["kind"]
            .as_str()
            .unwrap_or("none")
            .to_string();
        assert!(
            ["corrupt", "io"].contains(&kind.as_str()),
            "{}: {}",
            input.display(),
            recs[0]
        );
        assert_eq!(out.status.code(), Some(1));
        let left: Vec<_> = std::fs::read_dir(&out_dir)
            .map(|d| d.map(|e| e.unwrap().file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "{}: left {left:?}", input.display());
    }
}

#[test]
fn existing_outputs_are_skipped_unless_forced() {
    let dir = testkit::tempdir();
    let input = testkit::data("laz/autzen.laz");
    let o = dir.path().to_str().unwrap();
    let args = ["-F", "planarity", "-o", o, input.to_str().unwrap()];
    let (_, first) = run(&args);
    assert_eq!(section(&first[0])["status"], "ok");
    let (_, second) = run(&args);
    assert_eq!(section(&second[0])["status"], "skipped");
    let (_, third) = run(&["-f", "-F", "planarity", "-o", o, input.to_str().unwrap()]);
    assert_eq!(section(&third[0])["status"], "ok");
}

#[test]
fn a_directory_tree_is_mirrored_with_its_sidecars() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs"]) else {
        return;
    };
    let input = dir.path().join("in");
    std::fs::create_dir_all(input.join("a/b")).unwrap();
    std::fs::copy(testkit::data("laz/autzen.laz"), input.join("a/x.laz")).unwrap();
    std::fs::write(input.join("a/x.json"), b"{\"survey\": 1}").unwrap();
    std::fs::copy(
        testkit::data("laz/32-1-472-150-76.laz"),
        input.join("a/b/y.laz"),
    )
    .unwrap();
    std::fs::write(input.join("a/b/notes.txt"), b"not a sidecar of y").unwrap();
    let out_dir = dir.path().join("out");
    let (out, recs) = run(&[
        "-r",
        "--names",
        "ign",
        "-F",
        "nx,ny,nz,surface_variation",
        "--viewpoint",
        "0,0,-10000",
        "--format",
        "las",
        "-o",
        out_dir.to_str().unwrap(),
        "--base",
        input.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich -r");
    assert_eq!(recs.len(), 2, "only the clouds are inputs: {recs:?}");
    let x = out_dir.join("a/x.enriched.las");
    let y = out_dir.join("a/b/y.enriched.las");
    assert!(x.is_file() && y.is_file());
    assert_eq!(
        std::fs::read(out_dir.join("a/x.json")).unwrap(),
        b"{\"survey\": 1}"
    );
    assert!(!out_dir.join("a/b/notes.txt").exists());
    // IGN names, an uncompressed LAS, normals towards a viewpoint far below.
    let code = r#"
import sys, numpy as np, laspy
b = laspy.read(sys.argv[1])
assert b.header.point_format.id in (1, 3) and not sys.argv[1].endswith(".laz")
names = list(b.point_format.extra_dimension_names)
assert names == ["normal_x", "normal_y", "normal_z", "curvature"], names
n = np.stack([np.asarray(b["normal_x"]), np.asarray(b["normal_y"]), np.asarray(b["normal_z"])], 1)
to_view = np.array([0.0, 0.0, -10000.0]) - b.xyz
dot = (n * to_view).sum(1)
fin = np.isfinite(dot)
assert fin.sum() > 0.8 * len(dot), fin.sum()
assert (dot[fin] >= 0).all(), "normals not oriented towards the viewpoint"
"#;
    testkit::run_python(&py, code, &[y.to_str().unwrap()]);
}

#[test]
fn height_above_ground_is_the_nearest_ground_across_tiles() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs", "scipy"]) else {
        return;
    };
    let input = ign("test_data_77050_627755_LA93_IGN69.laz");
    let (out, recs) = run(&[
        "-F",
        "height_above_ground",
        "--ground-radius",
        "10",
        "--tile-points",
        "60000",
        "-o",
        dir.path().to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich");
    let s = section(&recs[0]);
    assert!(s["tiles"].as_u64().unwrap() >= 2, "{s}");
    // The reference: scipy's KD-tree over the class-2 points in XY, nearest within 10 m.
    let code = r#"
import sys, numpy as np, laspy
from scipy.spatial import cKDTree
inp, out, g = sys.argv[1], sys.argv[2], float(sys.argv[3])
a = laspy.read(inp); b = laspy.read(out)
ground = np.asarray(a.classification) == 2
assert ground.sum() > 100
d, i = cKDTree(np.stack([a.x[ground], a.y[ground]], 1)).query(np.stack([a.x, a.y], 1), distance_upper_bound=g)
zg = np.asarray(a.z[ground])[np.minimum(i, ground.sum() - 1)]
ref = np.where(np.isfinite(d), np.asarray(a.z) - zg, np.nan)
got = np.asarray(b["height_above_ground"], dtype=np.float64)
assert (np.isnan(ref) == np.isnan(got)).all(), (np.isnan(ref).sum(), np.isnan(got).sum())
fin = np.isfinite(ref)
err = np.abs(ref[fin] - got[fin])
# Equidistant ground points (coordinates on a 1 cm grid) may be chosen differently.
assert (err > 1e-3).sum() <= 0.001 * fin.sum(), ((err > 1e-3).sum(), fin.sum())
assert (got[ground] == 0).all(), "a ground point is its own nearest ground"
"#;
    testkit::run_python(
        &py,
        code,
        &[input.to_str().unwrap(), s["output"].as_str().unwrap(), "10"],
    );
}

#[test]
fn knn_features_are_exact_across_tiles() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs", "scipy"]) else {
        return;
    };
    let input = ign("test_data_77050_627755_LA93_IGN69.laz");
    let feats =
        "planarity,linearity,sphericity,eigenvalue1,eigenvalue3,number_of_neighbors,density";
    let mut outputs = Vec::new();
    for tile_points in ["15000", "1000000"] {
        let out_dir = dir.path().join(tile_points);
        let (out, recs) = run(&[
            "-k",
            "10",
            "-F",
            feats,
            "--tile-points",
            tile_points,
            "-o",
            out_dir.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        testkit::check(&out, "laz-enrich -k");
        let s = section(&recs[0]);
        assert_eq!(s["k"], 10, "{s}");
        if tile_points == "15000" {
            assert!(s["tiles"].as_u64().unwrap() >= 4, "{s}");
            // Some border points needed a wider halo: the retry path ran.
            assert!(s["knn_retried"].as_u64().unwrap() > 0, "{s}");
        }
        outputs.push(s["output"].as_str().unwrap().to_string());
    }
    assert!(
        std::fs::read(&outputs[0]).unwrap() == std::fs::read(&outputs[1]).unwrap(),
        "kNN features differ between tilings"
    );
    // The reference: scipy's KD-tree k nearest, sample covariance, numpy eigh.
    let code = r#"
import sys, numpy as np, laspy
from scipy.spatial import cKDTree
inp, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
a = laspy.read(inp); b = laspy.read(out)
xyz = np.ascontiguousarray(a.xyz)
t = cKDTree(xyz)
d, idx = t.query(xyz, k=k)
nb = xyz[idx]
c = nb - nb.mean(1, keepdims=True)
w = np.linalg.eigvalsh(np.einsum("nki,nkj->nij", c, c) / (k - 1))
l1, l2, l3 = w[:, 2], w[:, 1], w[:, 0]
ref = {"planarity": (l2 - l3) / l1, "linearity": (l1 - l2) / l1, "sphericity": l3 / l1, "eigenvalue1": l1, "eigenvalue3": l3}
# A tie at the k-th distance (coordinates on a 1 cm grid) is broken differently.
ok = (t.query(xyz, k=k + 1)[0][:, -1] > d[:, -1] + 1e-6) & (l1 > 0)
assert ok.mean() > 0.98, ok.mean()
worst = {n: float(np.nanmax(np.abs(ref[n][ok] - np.asarray(b[n], dtype=np.float64)[ok]))) for n in ref}
assert all(v <= 1e-4 for v in worst.values()), worst
assert (np.asarray(b["number_of_neighbors"]) == k).all()
dens = k / (4 / 3 * np.pi * d[:, -1] ** 3)
assert np.allclose(np.asarray(b["density"])[ok], dens[ok], rtol=1e-5)
"#;
    testkit::run_python(&py, code, &[input.to_str().unwrap(), &outputs[0], "10"]);
}

#[test]
fn ign_building_features_across_tiles() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs", "scipy"]) else {
        return;
    };
    let input = ign("test_data_77055_627755_LA93_IGN69.laz");
    let (out, recs) = run(&[
        "--names",
        "ign",
        "-F",
        "planarity,verticality,horizontality,wall_score,roof_score,num_points_2m",
        "--tile-points",
        "30000",
        "-o",
        dir.path().to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich");
    let s = section(&recs[0]);
    assert!(s["tiles"].as_u64().unwrap() >= 2, "{s}");
    let code = r#"
import sys, numpy as np, laspy
from scipy.spatial import cKDTree
a, b = laspy.read(sys.argv[1]), laspy.read(sys.argv[2])
f = {n: np.asarray(b[n], dtype=np.float64) for n in ["planarity", "verticality", "horizontality", "wall_score", "roof_score", "num_points_2m"]}
# No normal on a line (planarity 0 there, up to rounding): the scores made from it are
# NaN too.
line = np.isfinite(f["planarity"]) & np.isnan(f["verticality"])
assert (np.abs(f["planarity"][line]) <= 1e-6).all() and np.isnan(f["wall_score"][line]).all(), f["planarity"][line].max()
fin = np.isfinite(f["planarity"]) & ~line
assert np.allclose(f["wall_score"][fin], (f["planarity"] * f["verticality"])[fin], atol=1e-6)
assert np.allclose(f["roof_score"][fin], (f["planarity"] * f["horizontality"])[fin], atol=1e-6)
assert np.allclose(f["horizontality"][fin], 1 - f["verticality"][fin], atol=1e-6)
xyz = np.ascontiguousarray(a.xyz)
n2 = cKDTree(xyz).query_ball_point(xyz, 2.0, return_length=True)
# Counts may differ only on exact ties at 2 m (coordinates on a 1 cm grid).
assert (n2 != f["num_points_2m"]).sum() <= 0.002 * len(xyz), (n2 != f["num_points_2m"]).sum()
"#;
    testkit::run_python(
        &py,
        code,
        &[input.to_str().unwrap(), s["output"].as_str().unwrap()],
    );
}

/// Every public header field, input against output, read from the bytes (laspy refuses
/// some real headers: non-ASCII system identifiers): equal except the point format's
/// record length (4 bytes a new dimension), the header size, the offset to the points
/// and the VLRs (one Extra Bytes VLR, the others Superseded), and the bounds, which must
/// be the points' exact extent as laspy computes it (stored * scale + offset).
const HEADER: &str = r#"
import sys, struct, numpy as np, laspy
inp, out, nf = sys.argv[1], sys.argv[2], int(sys.argv[3])
def fields(p):
    b = open(p, "rb").read(375)
    f = {"source id, encoding, GUID": b[4:24], "version": b[24:26],
         "system id, software": b[26:90], "creation day, year": b[90:94],
         "point format": b[104] & 0x3F, "record length": struct.unpack_from("<H", b, 105)[0],
         "legacy counts": b[107:131], "scales, offsets": b[131:179]}
    if b[25] >= 4:
        f["1.4 counts"] = b[247:375]
    return f, struct.unpack_from("<6d", b, 179)
(fa, _), (fb, bounds) = fields(inp), fields(out)
fa["record length"] += 4 * nf
bad = [f"{k}: {fa[k]!r} -> {fb[k]!r}" for k in fa if fa[k] != fb[k]]
try:
    a = laspy.read(inp)
except Exception:
    a = None
if a is not None and len(a.points):
    want = (a.x.max(), a.x.min(), a.y.max(), a.y.min(), a.z.max(), a.z.min())
    if tuple(map(float, want)) != bounds:
        bad.append(f"bounds {bounds} are not the points' extent {want}")
    b = laspy.read(out)
    # Every VLR but the encoding ones and the first Extra Bytes VLR; Extra Bytes VLRs
    # after the first come out as Superseded (7).
    def keep(h):
        kept, first = [], True
        for v in h.vlrs:
            if v.user_id in ("laszip encoded", "copc"):
                continue
            rid = v.record_id
            if v.user_id == "LASF_Spec" and rid == 4:
                if first:
                    first = False
                    continue
                rid = 7
            kept.append((v.user_id, rid, bytes(v.record_data_bytes())))
        return kept
    if keep(a.header) != keep(b.header):
        bad.append(f"VLRs differ: {keep(a.header)} -> {keep(b.header)}")
    eb = lambda h: [v for v in h.vlrs if v.user_id == "LASF_Spec" and v.record_id == 4]
    if len(eb(a.header)) == 1:
        va, vb = eb(a.header)[0], eb(b.header)[0]
        da, db = bytes(va.record_data_bytes()), bytes(vb.record_data_bytes())
        if db[: len(da)] != da or va.description != vb.description:
            bad.append("the Extra Bytes VLR's descriptors or description changed")
    # The new dimensions, readable by name.
    if list(b.point_format.extra_dimension_names)[-nf:] != sys.argv[4].split(","):
        bad.append(f"new dimensions not found: {list(b.point_format.extra_dimension_names)}")
assert not bad, bad
print("ok")
"#;

/// A cloud whose bounds the las crate widened: z = 266.03 m is stored as 26603 at
/// 0.01 m, and 26603 * 0.01 is a hair above 266.03, so rounding the bound up through
/// the inverse gave 266.04.
const WIDENED: &str = r#"
import sys, numpy as np, laspy
h = laspy.LasHeader(point_format=6, version="1.4")
h.scales = np.array([0.01, 0.01, 0.01]); h.offsets = np.array([0.0, 0.0, 0.0])
las = laspy.LasData(h)
n = 200
las.x = np.arange(n) * 0.07 + 1000.03; las.y = (np.arange(n) % 13) * 0.11 + 2000.07
las.z = np.where(np.arange(n) % 2 == 0, 266.03, 265.57)
las.write(sys.argv[1])
"#;

#[test]
fn output_headers_keep_every_input_field_and_exact_bounds() {
    let Some((py, dir)) = testkit::python_and_tempdir(&["laspy", "lazrs"]) else {
        return;
    };
    let mut inputs: Vec<PathBuf> = [
        "laz/autzen.laz",
        "laz/autzen.las",
        "laz/32-1-472-150-76.laz",
        "laz/extrabytes.laz",
    ]
    .iter()
    .map(|p| testkit::data(p))
    .collect();
    inputs.extend(
        std::fs::read_dir(testkit::data("laz/ign"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "laz")),
    );
    inputs.sort();
    std::fs::create_dir(dir.path().join("made")).unwrap();
    let widened = dir.path().join("made/widened.las");
    testkit::run_python(&py, WIDENED, &[widened.to_str().unwrap()]);
    inputs.push(widened);
    let mut checked = 0;
    for input in &inputs {
        let out_dir = dir.path().join(input.file_name().unwrap());
        let (out, recs) = run(&[
            "-F",
            "nz,planarity",
            "-o",
            out_dir.to_str().unwrap(),
            input.to_str().unwrap(),
        ]);
        testkit::check(&out, "laz-enrich");
        let s = section(&recs[0]);
        assert_eq!(s["status"], "ok", "{:?}", recs[0]);
        let output = s["output"].as_str().unwrap();
        testkit::run_python(
            &py,
            HEADER,
            &[input.to_str().unwrap(), output, "2", "nz,planarity"],
        );
        checked += 1;
    }
    assert!(checked >= 8, "{checked} files checked");
}

/// A LAS 1.4 cloud with three extra dimensions whose descriptors are split over two
/// Extra Bytes records (the first descriptor, then the other two), as two writers leave
/// them: in two VLRs (`vlr`), or a VLR and an EVLR (`evlr`, then a second EVLR of 70 kB
/// after it), with a VLR of another user between them whose header bytes the las writer
/// would not keep (a LAS 1.0 reserved value, a Latin-1 description). laspy reads only
/// the first Extra Bytes record of such a file, so the values written are saved beside
/// it (`.npz`).
const SPLIT_EB: &str = r#"
import sys, struct, numpy as np, laspy
out, mode = sys.argv[1], sys.argv[2]
rng = np.random.default_rng(9)
n = 500
h = laspy.LasHeader(point_format=6, version="1.4")
h.scales = np.array([0.01, 0.01, 0.01]); h.offsets = np.array([1000.0, 2000.0, 0.0])
h.add_extra_dims([
    laspy.ExtraBytesParams("echo_width", "uint16", "first record"),
    laspy.ExtraBytesParams("reflectance", "float64", "second record"),
    laspy.ExtraBytesParams("amplitude", "int32", "second record, scaled",
                           scales=np.array([0.01]), offsets=np.array([5.0])),
])
las = laspy.LasData(h)
las.x = rng.uniform(1000, 1030, n); las.y = rng.uniform(2000, 2030, n)
las.z = rng.uniform(100, 110, n)
las.echo_width = rng.integers(0, 65535, n).astype(np.uint16)
las.reflectance = rng.normal(0, 1, n)
las.amplitude = np.round(rng.uniform(-100, 100, n), 2)
las.write(out)
np.savez(out + ".npz", **{k: np.asarray(las[k]) for k in ["echo_width", "reflectance", "amplitude"]})
b = bytearray(open(out, "rb").read())
hsize, = struct.unpack_from("<H", b, 94); off, nvlr = struct.unpack_from("<IL", b, 96)
assert struct.unpack_from("<Q", b, 235)[0] == 0, "laspy wrote EVLRs"
p, vlrs = hsize, []
for _ in range(nvlr):
    ln, = struct.unpack_from("<H", b, p + 20)
    vlrs.append(bytes(b[p:p + 54 + ln])); p += 54 + ln
def is_eb(v):
    return v[2:18].rstrip(b"\0") == b"LASF_Spec" and struct.unpack_from("<H", v, 18)[0] == 4
[eb] = [v for v in vlrs if is_eb(v)]
d = eb[54:]; assert len(d) == 3 * 192
def record(reserved, user, rid, desc, data, extended=False):
    length = struct.pack("<Q", len(data)) if extended else struct.pack("<H", len(data))
    return (struct.pack("<H", reserved) + user.ljust(16, b"\0") + struct.pack("<H", rid)
            + length + desc.ljust(32, b"\0") + data)
# Two Extra Bytes records as two writers leave them (RIEGL's, then TerraScan's), and a
# record of another user with a LAS 1.0 reserved value and a Latin-1 description.
first = record(0, b"LASF_Spec", 4, b"RIEGL Extra Bytes", d[:192])
other = record(0xAABB, b"membudget-test", 42, b"Hauteur m\xe9diane (IGN)", b"kept as is")
second = record(0, b"LASF_Spec", 4, b"TerraScan Extrabytes", d[192:], mode == "evlr")
rest = [v for v in vlrs if not is_eb(v)]
new = [first, other] + rest + ([second] if mode == "vlr" else [])
body = b"".join(new)
struct.pack_into("<IL", b, 96, hsize + len(body), len(new))
f = bytearray(bytes(b[:hsize]) + body + bytes(b[off:]))
if mode == "evlr":
    tail = second + record(0, b"membudget-test", 43, b"d\xe9cimation", b"x" * 70000, True)
    struct.pack_into("<QL", f, 235, len(f), 2); f += tail
open(out, "wb").write(f)
"#;

/// Enrich `input` with `features` into `out_dir` as `format`; the run must succeed. The
/// output's path.
fn enrich_ok(input: &Path, out_dir: &Path, features: &str, format: &str) -> String {
    let (out, recs) = run(&[
        "-F",
        features,
        "--format",
        format,
        "-o",
        out_dir.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    testkit::check(&out, "laz-enrich");
    let s = section(&recs[0]);
    assert_eq!(s["status"], "ok", "{:?}", recs[0]);
    s["output"].as_str().unwrap().to_string()
}

/// An output of a `SPLIT_EB` cloud, checked from its bytes, with laspy, and with an
/// independent reader of the point records.
const SPLIT_EB_CHECK: &str = r#"
import os, sys, struct, numpy as np, laspy, laszip
inp, out = sys.argv[1], sys.argv[2]
names = sys.argv[3].split(",")

def records(path):
    """Every VLR then EVLR of a LAS file as (extended, raw bytes), parsed by hand."""
    b = open(path, "rb").read()
    hsize, = struct.unpack_from("<H", b, 94); nvlr, = struct.unpack_from("<L", b, 100)
    recs, p = [], hsize
    for _ in range(nvlr):
        ln, = struct.unpack_from("<H", b, p + 20)
        recs.append((False, b[p:p + 54 + ln])); p += 54 + ln
    if b[25] >= 4:
        p, n = struct.unpack_from("<QL", b, 235)
        for _ in range(n):
            ln, = struct.unpack_from("<Q", b, p + 20)
            recs.append((True, b[p:p + 60 + ln])); p += 60 + ln
    return recs

def rid(r):
    return struct.unpack_from("<H", r[1], 18)[0]

def user(r):
    return r[1][2:18].rstrip(b"\0")

def payload(r):
    return r[1][60:] if r[0] else r[1][54:]

is_eb = lambda r: user(r) == b"LASF_Spec" and rid(r) == 4
encoding = lambda r: (user(r), rid(r)) in [(b"laszip encoded", 22204), (b"copc", 1), (b"copc", 1000)]
a = [r for r in records(inp) if not encoding(r)]
b = [r for r in records(out) if not encoding(r)]
eb_in = [r for r in a if is_eb(r)]
eb_out = [r for r in b if is_eb(r)]
assert len(eb_in) >= 2, "the input should have several Extra Bytes records"
# One Extra Bytes record in the output, a VLR (laspy reads no other), whose header is
# the first input one's but for its length, holding every input descriptor byte for
# byte and in file order, then one float descriptor per new dimension.
assert len(eb_out) == 1 and not eb_out[0][0], [(e, rid(r)) for e, r in b]
eb = eb_out[0]
first = eb_in[0][1]
if not eb_in[0][0]:
    assert eb[1][:20] == first[:20] and eb[1][22:54] == first[22:54], "Extra Bytes VLR header changed"
else:
    assert eb[1][:20] == first[:20] and eb[1][22:54] == first[28:60], "Extra Bytes VLR header changed"
d = b"".join(payload(r) for r in eb_in)
got = payload(eb)
assert got[:len(d)] == d, "the input's descriptors changed"
assert len(got) == len(d) + 192 * len(names), len(got)
for i, n in enumerate(names):
    t = got[len(d) + 192 * i:]
    assert t[2] == 9 and t[4:36].rstrip(b"\0").decode() == n, (i, t[:36])
# Every other input record, VLR or EVLR, in its place with every byte, except that
# Extra Bytes records after the first are marked Superseded (LASF_Spec 7).
rest_out = [r for r in b if r is not eb]
exp = []
for r in a:
    if r is eb_in[0] and not r[0]:
        continue
    if is_eb(r):
        raw = bytearray(r[1]); struct.pack_into("<H", raw, 18, 7); exp.append((r[0], bytes(raw)))
    else:
        exp.append(r)
assert rest_out == exp, ([(e, user((e, r)), rid((e, r))) for e, r in rest_out],
                         [(e, user((e, r)), rid((e, r))) for e, r in exp])

types = {1: "u1", 2: "i1", 3: "<u2", 4: "<i2", 5: "<u4", 6: "<i4", 7: "<u8", 8: "<i8", 9: "<f4", 10: "<f8"}

def points(path):
    """X, Y, Z and the raw extra bytes of every point, by an independent reader of the
    point records: the LASzip library's own (the LASzip DLL through its Python bindings)
    for LAZ, the bytes at the offset to point data for LAS."""
    if path.endswith(".laz"):
        z = laszip.LasZipDll()
        assert z.open_reader(path), z.get_warning()
        h = z.header()
        npts = max(h.number_of_point_records, h.extended_number_of_point_records)
        rows, xyz = [], []
        for _ in range(npts):
            z.read_point(); q = z.point()
            rows.append(bytes(q.extra_bytes)); xyz.append((q.X, q.Y, q.Z))
        z.close_reader()
        return np.array(xyz), np.frombuffer(b"".join(rows), np.uint8).reshape(npts, -1)
    f = open(path, "rb").read()
    off, = struct.unpack_from("<L", f, 96); size, = struct.unpack_from("<H", f, 105)
    npts, = struct.unpack_from("<L", f, 107)
    if npts == 0 and f[25] >= 4:
        npts, = struct.unpack_from("<Q", f, 247)
    base = {0: 20, 1: 28, 2: 26, 3: 34, 6: 30, 7: 36, 8: 38}[f[104] & 0x3F]
    rec = np.frombuffer(f, np.uint8, npts * size, off).reshape(npts, size)
    return np.ascontiguousarray(rec[:, :12]).view("<i4"), rec[:, base:]

def decode(raw, descriptors):
    """Every documented dimension of `raw` as the descriptors lay it out (LAS 1.4 R15,
    4.3: each after the previous, scale and offset applied when their bits are set)."""
    values, at = {}, 0
    for i in range(len(descriptors) // 192):
        t = descriptors[192 * i:192 * (i + 1)]
        name, kind, opts = t[4:36].rstrip(b"\0").decode(), t[2], t[3]
        size = opts if kind == 0 else np.dtype(types[kind]).itemsize
        if kind:
            v = np.ascontiguousarray(raw[:, at:at + size]).view(types[kind])[:, 0]
            scale, offset = struct.unpack_from("<d", t, 112)[0], struct.unpack_from("<d", t, 136)[0]
            if opts & 8 or opts & 16:
                v = v * (scale if opts & 8 else 1.0) + (offset if opts & 16 else 0.0)
            values[name] = v
        at += size
    assert at == raw.shape[1], (at, raw.shape)
    return values

# The input's values: as written (laspy reads only the first Extra Bytes record of the
# input), or for a real file, its points' extra bytes decoded by all its descriptors.
if os.path.exists(inp + ".npz"):
    want = dict(np.load(inp + ".npz"))
else:
    want = decode(points(inp)[1], d)

# laspy: every dimension by name, the input's with their values.
las = laspy.read(out)
dims = list(las.point_format.extra_dimension_names)
assert dims == list(want) + names, dims
for k in want:
    assert np.array_equal(np.asarray(las[k]), want[k]), k
for k in names:
    assert np.isfinite(np.asarray(las[k])).sum() > 0, k

# The independent reader: the same points, the input's dimensions with their values
# and the new ones with laspy's, decoded by the one descriptor list.
xyz, raw = points(out)
assert np.array_equal(xyz, np.stack([las.X, las.Y, las.Z], 1)), "X, Y, Z differ"
got_values = decode(raw, got)
assert list(got_values) == dims, list(got_values)
for k in dims:
    ref = want[k] if k in want else np.asarray(las[k])
    assert np.array_equal(got_values[k], ref, equal_nan=True), (k, got_values[k][:3], ref[:3])
print("ok")
"#;

/// Several Extra Bytes records: one Extra Bytes VLR in the output (the first input one,
/// holding every input descriptor byte for byte, then the new ones), the others kept
/// in place byte for byte as Superseded records, every other VLR and EVLR byte for byte
/// (every EVLR, not only the first the las reader keeps); laspy and the LASzip library
/// read every dimension with its values. On made clouds and a real IGN tile. Why one
/// VLR: see `las_io::output_header`.
#[test]
fn several_extra_bytes_records_become_one_vlr_and_superseded_copies() {
    let Some(py) = testkit::python(&["laspy", "lazrs", "laszip", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    for (mode, format) in [
        ("vlr", "laz"),
        ("vlr", "las"),
        ("evlr", "laz"),
        ("evlr", "las"),
        // A real IGN tile (697,721 points) with a RIEGL and an unnamed Extra Bytes VLR.
        ("ign", "laz"),
    ] {
        let input = if mode == "ign" {
            ign("las_with_several_extra_byte_bloc.laz")
        } else {
            dir.path().join(format!("split-{mode}.las"))
        };
        if !input.exists() {
            testkit::run_python(&py, SPLIT_EB, &[input.to_str().unwrap(), mode]);
        }
        let out_dir = dir.path().join(format!("out-{mode}-{format}"));
        let output = enrich_ok(&input, &out_dir, "nz,planarity", format);
        testkit::run_python(
            &py,
            SPLIT_EB_CHECK,
            &[input.to_str().unwrap(), &output, "nz,planarity"],
        );
    }
}

/// A LAS 1.4 cloud with internal waveform data: an EVLR of another user, then the
/// waveform data packet record (LASF_Spec 65535) the header's byte 227 points at, global
/// encoding bit 1 set.
const WAVEFORM: &str = r#"
import sys, struct, numpy as np, laspy
out = sys.argv[1]
rng = np.random.default_rng(3)
n = 400
h = laspy.LasHeader(point_format=6, version="1.4")
h.scales = np.array([0.01, 0.01, 0.01]); h.offsets = np.array([0.0, 0.0, 0.0])
las = laspy.LasData(h)
las.x = rng.uniform(0, 20, n); las.y = rng.uniform(0, 20, n); las.z = rng.uniform(0, 5, n)
las.write(out)
b = bytearray(open(out, "rb").read())
assert struct.unpack_from("<Q", b, 235)[0] == 0, "laspy wrote EVLRs"
def evlr(user, rid, desc, data):
    return (struct.pack("<H", 0) + user.ljust(16, b"\0") + struct.pack("<HQ", rid, len(data))
            + desc.ljust(32, b"\0") + data)
first = evlr(b"membudget-test", 7, b"before the waveforms", b"y" * 1000)
packets = bytes(range(256)) * 40
start = len(b)
b += first
struct.pack_into("<Q", b, 227, len(b))
b += evlr(b"LASF_Spec", 65535, b"waveform data packets", packets)
struct.pack_into("<QL", b, 235, start, 2)
ge, = struct.unpack_from("<H", b, 6)
struct.pack_into("<H", b, 6, ge | 2)
open(out, "wb").write(b)
"#;

/// The output's byte 227 must point at its own waveform data packet record, holding the
/// input's packets byte for byte.
const WAVEFORM_CHECK: &str = r#"
import sys, struct, laspy
def waveform(path):
    b = open(path, "rb").read()
    at, = struct.unpack_from("<Q", b, 227)
    assert at > 0, f"{path}: no waveform record start in the header"
    user = b[at + 2:at + 18].rstrip(b"\0"); rid, ln = struct.unpack_from("<HQ", b, at + 18)
    assert (user, rid) == (b"LASF_Spec", 65535), f"{path}: byte 227 points at {user} {rid}"
    ge, = struct.unpack_from("<H", b, 6)
    return b[at + 60:at + 60 + ln], ge & 2
src, out = sys.argv[1], sys.argv[2]
assert waveform(out) == waveform(src), "the waveform packets or the encoding bit differ"
assert len(laspy.read(out).points) == len(laspy.read(src).points)
"#;

#[test]
fn internal_waveform_data_stays_reachable() {
    let Some(py) = testkit::python(&["laspy", "lazrs", "numpy"]) else {
        return;
    };
    let dir = testkit::tempdir();
    let input = dir.path().join("waveform.las");
    testkit::run_python(&py, WAVEFORM, &[input.to_str().unwrap()]);
    for format in ["las", "laz"] {
        let output = enrich_ok(
            &input,
            &dir.path().join(format!("out-{format}")),
            "nz",
            format,
        );
        testkit::run_python(&py, WAVEFORM_CHECK, &[input.to_str().unwrap(), &output]);
    }
}
