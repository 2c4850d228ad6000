//! The tools composed as users compose them: through `sh -c` pipelines with real pipes,
//! on the shared sample data.

use serde_json::Value;
use std::process::{Command, Output};
use testkit::{bin, ndjson, shared_data};

fn sh(script: &str) -> Output {
    let dir = bin("mem-estimate").parent().unwrap().to_path_buf();
    bin("chunk-plan");
    bin("laz-enrich");
    let path = format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-c", script])
        .env("PATH", path)
        .env("DATA", shared_data())
        .output()
        .expect("bash")
}

#[test]
fn find_mem_estimate_chunk_plan_gives_one_record_per_file() {
    let files = Command::new("find")
        .arg(shared_data())
        .args(["-type", "f"])
        .output()
        .unwrap();
    let n = String::from_utf8_lossy(&files.stdout).lines().count();
    assert!(n > 50, "expected the shared data, found {n} files");
    let out = sh(
        r#"find "$DATA" -type f | mem-estimate | chunk-plan --memory-limit 64MiB; echo "status=${PIPESTATUS[*]}" >&2"#,
    );
    let records = ndjson(&out.stdout);
    assert_eq!(records.len(), n, "one record per file");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // mem-estimate fails on the licence and README files: exit 1; chunk-plan passes the
    // failed records through and says so with exit 1 too.
    assert!(stderr.contains("status=0 1 1"), "{stderr}");
    let failed: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    assert!(!failed.is_empty());
    for r in &failed {
        let e = &r["error"];
        assert!(
            e["kind"].is_string() && e["message"].is_string() && e["tool"].is_string(),
            "{r}"
        );
    }
    // Every README / licence is an error record, every TIFF outside fuzz/ has a plan.
    for r in &records {
        let p = r["path"].as_str().unwrap();
        if p.ends_with("README.md") || p.contains("LICENSE") || p.ends_with("COPYRIGHT") {
            assert_eq!(r["error"]["kind"], "unsupported", "{r}");
        }
        if (p.ends_with(".tif") || p.ends_with(".tiff"))
            && !p.contains("/fuzz/")
            && r.get("error").is_none()
        {
            let plan = &r["plan"]["strip-convert"];
            assert!(
                plan["predicted_peak_bytes"].as_u64().unwrap() <= 64 << 20,
                "{r}"
            );
        }
    }
    // Error lines on stderr are `tool: path: message`, one per failure, from the tool
    // that failed only.
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| !l.starts_with("status="))
        .collect();
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("mem-estimate: ") || l.starts_with("chunk-plan: ")),
        "{stderr}"
    );
    assert_eq!(lines.len(), failed.len(), "{stderr}");
}

#[test]
fn a_closed_pipe_downstream_ends_quietly() {
    // Thousands of inputs, one record read: mem-estimate must stop at once, quietly.
    let out = sh(
        r#"for i in $(seq 3000); do echo "$DATA/tiff/rgb-3c-8b.tiff"; done \
        | mem-estimate | chunk-plan -m 64MiB | head -n 1; echo "status=${PIPESTATUS[*]}" >&2"#,
    );
    assert_eq!(ndjson(&out.stdout).len(), 1);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The feeding loop itself may die of SIGPIPE (141); our two tools end with 0, silently.
    let status: Vec<&str> = stderr
        .trim()
        .trim_start_matches("status=")
        .split(' ')
        .collect();
    assert_eq!(status.len(), 4, "{stderr}");
    assert_eq!(status[1..], ["0", "0", "0"], "{stderr}");
}

#[test]
fn unknown_fields_pass_through_every_tool() {
    let out = sh(
        r#"printf '{"job":"j1","path":"%s","nested":{"a":[1,2]}}\n' "$DATA/tiff/rgb-3c-8b.tiff" \
        | mem-estimate | chunk-plan --for strip-convert -m 1GiB"#,
    );
    let r = &ndjson(&out.stdout)[0];
    assert_eq!(r["job"], "j1");
    assert_eq!(r["nested"]["a"][1], 2);
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    assert_eq!(keys[..3], ["job", "path", "nested"], "order kept");
    assert!(
        r["estimate"]["strip-convert"]["min_bytes"]
            .as_u64()
            .unwrap()
            > 0
    );
    let plan = &r["plan"]["strip-convert"];
    assert_eq!(plan["chunk_unit"], "tile_side");
    assert!(plan["workers"].as_u64().unwrap() >= 1);
    assert_eq!(plan["tile"].as_array().unwrap().len(), 2);
    assert_eq!(r["plan"]["budget_bytes"].as_u64(), Some(1 << 30));
}

#[test]
fn an_impossible_budget_exits_3_naming_the_minimum() {
    let out =
        sh(r#"mem-estimate "$DATA/tiff/rgb-3c-8b.tiff" | chunk-plan --for strip-convert -m 1MiB"#);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &ndjson(&out.stdout)[0];
    assert_eq!(r["error"]["kind"], "budget");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs at least"),
        "{r}"
    );
}

#[test]
fn shards_spread_the_inputs() {
    let out = sh(
        r#"find "$DATA/tiff" "$DATA/images" -maxdepth 1 -name '*.tif*' | mem-estimate \
        | chunk-plan -m 1GiB --shards 3 --order largest"#,
    );
    let records = ndjson(&out.stdout);
    let ok: Vec<&Value> = records
        .iter()
        .filter(|r| r.get("error").is_none())
        .collect();
    assert!(ok.len() > 10);
    let mut used = [false; 3];
    for r in &ok {
        let s = r["plan"]["shard"].as_u64().unwrap();
        assert!(s < 3);
        used[s as usize] = true;
    }
    assert_eq!(used, [true; 3]);
}

#[test]
fn a_processing_tool_keeps_to_the_budget_chunk_plan_planned() {
    let out_dir = testkit::tempdir();
    let script = format!(
        r#"mem-estimate "$DATA/laz/ign/test_data_77050_627755_LA93_IGN69.laz" \
        | chunk-plan --for laz-enrich -m 100MiB | laz-enrich -o {}"#,
        out_dir.path().display()
    );
    let out = sh(&script);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = &ndjson(&out.stdout)[0];
    let s = &r["laz-enrich"];
    assert_eq!(s["status"], "ok", "{r}");
    assert_eq!(s["budget_bytes"].as_u64(), Some(100 << 20), "{r}");
    assert!(s["peak_rss"].as_u64().unwrap() <= 100 << 20, "{r}");
}

#[test]
fn a_file_named_with_latin1_bytes_goes_through_every_tool() {
    use std::os::unix::ffi::OsStrExt;
    bin("strip-convert");
    let dir = testkit::tempdir();
    let d = dir.path();
    let name = testkit::latin1_name("scan_", ".tif");
    std::fs::copy(testkit::data("tiff/rgb-3c-8b.tiff"), d.join(&name)).unwrap();
    let want = d.join(testkit::latin1_name("scan_", ".jp2"));

    // find -print0 | xargs -0: the name as an argument.
    let out = sh(&format!(
        "cd '{}' && find . -name '*.tif' -print0 | xargs -0 mem-estimate",
        d.display()
    ));
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 1, "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(
        testkit::record_path(&recs[0]).as_os_str().as_bytes(),
        [b"./".as_slice(), name.as_bytes()].concat()
    );
    assert_eq!(recs[0]["format"], "tiff");

    // ls | mem-estimate | chunk-plan | strip-convert: the name as a stdin line, then in
    // records; the output keeps the input's bytes.
    let out = sh(&format!(
        "cd '{}' && ls | mem-estimate | chunk-plan -m 64MiB | strip-convert -o out; \
         echo \"status=${{PIPESTATUS[*]}}\" >&2",
        d.display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status=0 0 0 0"), "{stderr}");
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["strip-convert"]["status"], "ok", "{}", recs[0]);
    let made = d.join("out").join(want.file_name().unwrap());
    assert!(made.is_file(), "{}", recs[0]);
    let output = &recs[0]["strip-convert"];
    assert_eq!(
        testkit::record_path(&serde_json::json!({
            "path": output["output"], "path_bytes": output["output_bytes"]
        })),
        std::path::Path::new("out").join(want.file_name().unwrap())
    );
    // A real JP2 (signature box), not an empty file.
    let head = std::fs::read(&made).unwrap();
    assert_eq!(&head[..12], b"\0\0\0\x0cjP  \r\n\x87\n");
}

/// Outputs named after a non-UTF-8 input keep its bytes in tile-enhance (thumbnail,
/// spots) and cbz-stream (pack, cover, unpack), as in strip-convert above.
#[test]
fn outputs_named_after_a_latin1_input_keep_its_bytes() {
    bin("tile-enhance");
    bin("cbz-stream");
    let dir = testkit::tempdir();
    let d = dir.path();
    let tif = testkit::latin1_name("scan_", ".tif");
    std::fs::copy(testkit::data("tiff/rgb-3c-8b.tiff"), d.join(&tif)).unwrap();
    let pages = d.join(testkit::latin1_name("issue_", ""));
    std::fs::create_dir(&pages).unwrap();
    std::fs::copy(
        testkit::data("images/hubble_deep_field.jpg"),
        pages.join("001.jpg"),
    )
    .unwrap();
    let out = sh(&format!(
        "cd '{}' && tile-enhance thumbnail -q -s 32 -o out scan_* \
         && tile-enhance spots -q --sigma 1.5 -o out scan_* \
         && cbz-stream pack -q -o out issue_* \
         && cbz-stream cover -q -o out out/issue_*.cbz \
         && cbz-stream unpack -q -o unpacked out/issue_*.cbz",
        d.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for want in [
        d.join("out")
            .join(testkit::latin1_name("scan_", ".thumb.jpg")),
        d.join("out")
            .join(testkit::latin1_name("scan_", ".spots.csv")),
        d.join("out").join(testkit::latin1_name("issue_", ".cbz")),
        d.join("out/out")
            .join(testkit::latin1_name("issue_", ".cover.png")),
        d.join("unpacked/out")
            .join(testkit::latin1_name("issue_", ""))
            .join("001.jpg"),
    ] {
        assert!(want.is_file(), "{} missing", want.display());
    }
}

#[test]
fn a_write_error_on_stdout_is_fatal_only_a_closed_pipe_is_quiet() {
    bin("strip-convert");
    let dir = testkit::tempdir();
    let out = sh(&format!(
        r#"mem-estimate "$DATA/tiff/rgb-3c-8b.tiff" "$DATA/tiff/rgb-3c-8b.tiff" > /dev/full; echo "status=$?" >&2
        strip-convert -o '{}' "$DATA/tiff/rgb-3c-8b.tiff" > /dev/full; echo "status=$?" >&2"#,
        dir.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            "mem-estimate: write error: No space left on device (os error 28)",
            "status=2",
            "strip-convert: write error: No space left on device (os error 28)",
            "status=2",
        ],
        "{stderr}"
    );
}

#[test]
fn an_error_record_passes_every_tool_untouched_and_is_reported_once() {
    let out = sh(
        r#"echo '{bad' | mem-estimate | chunk-plan | mem-estimate; echo "status=${PIPESTATUS[*]}" >&2"#,
    );
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 1);
    let r = &recs[0];
    assert_eq!(r["line"], "{bad", "{r}");
    assert_eq!(r["error"]["kind"], "bad_record");
    assert_eq!(r["error"]["tool"], "mem-estimate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("mem-estimate: {bad: not a JSON record"),
        "{stderr}"
    );
    // Every tool that saw the failed input says so in its status.
    assert_eq!(lines[1], "status=0 1 1 1");
}

/// `mem-estimate | chunk-plan --for TOOL OPTIONS | jq EDIT | TOOL OPTIONS`: the tool's
/// record. `edit` changes the plan on its way (jq), so a test sees the plan's numbers
/// run, not numbers the tool would have found again on its own.
fn planned_run(input: &str, tool: &str, plan_opts: &str, edit: &str, tool_opts: &str) -> Value {
    bin("strip-convert");
    let out_dir = testkit::tempdir();
    let out = sh(&format!(
        r#"mem-estimate "$DATA/{input}" | chunk-plan --for {tool} {plan_opts} \
        | jq -c '{edit}' | {tool} -o '{}' {tool_opts}; echo "status=${{PIPESTATUS[*]}}" >&2"#,
        out_dir.path().display()
    ));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("status=0 0 0 0"), "{stderr}");
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 1, "{stderr}");
    assert_eq!(recs[0][tool]["status"], "ok", "{}", recs[0]);
    recs[0].clone()
}

#[test]
fn strip_convert_runs_the_tile_and_workers_chunk_plan_planned() {
    // As planned: the record says the plan was used, and the run is the plan.
    let r = planned_run(
        "tiff/kodim02-lzw.tif",
        "strip-convert",
        "-m 64MiB -j 2",
        ".",
        "",
    );
    let (plan, s) = (&r["plan"]["strip-convert"], &r["strip-convert"]);
    assert_eq!(s["plan"], "used", "{r}");
    assert_eq!(
        plan["options"],
        serde_json::json!({"profile": null, "tile": null})
    );
    assert_eq!(s["tile"], plan["tile"], "{r}");
    assert_eq!(s["threads"], plan["workers"], "{r}");
    assert_eq!(s["predicted_peak_rss"], plan["predicted_peak_bytes"], "{r}");

    // A plan changed on its way is what runs: strip-convert does not plan again.
    let r = planned_run(
        "tiff/kodim02-lzw.tif",
        "strip-convert",
        "-m 64MiB -j 2",
        r#".plan["strip-convert"].tile = [128, 64] | .plan["strip-convert"].workers = 1"#,
        "",
    );
    let s = &r["strip-convert"];
    assert_eq!(s["plan"], "used", "{r}");
    assert_eq!(s["tile"], serde_json::json!([128, 64]), "{r}");
    assert_eq!(s["threads"], 1, "{r}");

    // Planned with the profile the run uses: its tile (1024, clipped to the image).
    let r = planned_run(
        "tiff/kodim02-lzw.tif",
        "strip-convert",
        "-m 64MiB --profile bnf",
        ".",
        "--profile bnf",
    );
    let (plan, s) = (&r["plan"]["strip-convert"], &r["strip-convert"]);
    assert_eq!(s["plan"], "used", "{r}");
    assert_eq!(plan["options"]["profile"], "bnf");
    assert_eq!(plan["tile"], serde_json::json!([768, 512]), "{r}");
    assert_eq!(s["tile"], plan["tile"], "{r}");

    // Other options than planned: planned again, and the record says why.
    let r = planned_run(
        "tiff/kodim02-lzw.tif",
        "strip-convert",
        "-m 64MiB",
        ".",
        "--profile bnf",
    );
    let why = r["strip-convert"]["plan"].as_str().unwrap();
    assert!(why.starts_with("replanned: planned with options"), "{r}");
    assert_eq!(
        r["strip-convert"]["tile"],
        serde_json::json!([768, 512]),
        "{r}"
    );

    // Another budget than planned (-m given to the tool): planned again.
    let r = planned_run(
        "tiff/kodim02-lzw.tif",
        "strip-convert",
        "-m 64MiB",
        ".",
        "-m 48MiB",
    );
    let why = r["strip-convert"]["plan"].as_str().unwrap();
    assert!(
        why.starts_with("replanned: planned for a budget of 64"),
        "{r}"
    );
}

#[test]
fn laz_enrich_runs_the_threads_and_tiles_chunk_plan_planned() {
    let cloud = "laz/ign/test_data_77050_627755_LA93_IGN69.laz";
    let r = planned_run(cloud, "laz-enrich", "-m 100MiB -j 2 -F all", ".", "-F all");
    let (plan, s) = (&r["plan"]["laz-enrich"], &r["laz-enrich"]);
    assert_eq!(s["plan"], "used", "{r}");
    assert_eq!(plan["options"]["features"], "all", "{r}");
    assert_eq!(s["threads"], plan["workers"], "{r}");
    assert_eq!(s["tile_capacity"], plan["tile_points"], "{r}");
    assert_eq!(s["slab_points"], plan["slab_points"], "{r}");
    // laz-enrich leaves chunk-plan's plan as it was.
    assert!(plan.get("predicted_peak_bytes").is_some(), "{r}");
    assert!(s["peak_rss"].as_u64().unwrap() <= 100 << 20, "{r}");

    // A plan changed on its way is what runs.
    let r = planned_run(
        cloud,
        "laz-enrich",
        "-m 100MiB -j 2 -F all",
        r#".plan["laz-enrich"].tile_points = 30000 | .plan["laz-enrich"].workers = 1 | .plan["laz-enrich"].slab_points = 8192"#,
        "-F all",
    );
    let s = &r["laz-enrich"];
    assert_eq!(s["plan"], "used", "{r}");
    assert_eq!(s["threads"], 1, "{r}");
    assert_eq!(s["tile_capacity"], 30000, "{r}");
    assert_eq!(s["slab_points"], 8192, "{r}");
    assert!(s["max_pass_points"].as_u64().unwrap() <= 30000, "{r}");

    // Planned for the default features, run with all of them: planned again.
    let r = planned_run(cloud, "laz-enrich", "-m 100MiB", ".", "-F all");
    let why = r["laz-enrich"]["plan"].as_str().unwrap();
    assert!(why.starts_with("replanned: planned with options"), "{r}");
}

#[test]
fn every_cost_model_is_a_tool_or_a_tool_operation() {
    // The name under `estimate` and `plan`, and the command line that runs it.
    fn runs(model: &'static str) -> Option<(&'static str, &'static str)> {
        Some(match model {
            "strip-convert" | "laz-enrich" | "cbz-stream" | "tile-enhance" => (model, ""),
            "spot-detect" => ("tile-enhance", "spots"),
            "fits-stack" => ("strip-convert", "--stack"),
            "pdf-to-cbz" => ("cbz-stream", "from-pdf"),
            _ => return None,
        })
    }
    let tools = testkit::workspace_root().join("tools");
    for model in membudget::cost::model_names() {
        let (tool, what) = runs(model).unwrap_or_else(|| panic!("{model}: which tool runs it?"));
        assert!(
            tools.join(tool).join("Cargo.toml").is_file(),
            "{model}: no tools/{tool}"
        );
        let help = std::process::Command::new(bin(tool))
            .arg("--help")
            .output()
            .unwrap();
        let help = String::from_utf8_lossy(&help.stdout);
        assert!(
            help.contains(what),
            "{model}: `{tool} --help` has no {what}"
        );
    }
}

#[test]
fn find_mem_estimate_chunk_plan_strip_convert_stacks_fits_like_astropy() {
    let Some(py) = testkit::python(&["astropy", "numpy"]) else {
        return;
    };
    bin("strip-convert");
    let dir = testkit::tempdir();
    let d = dir.path();
    // 16 frames: with fewer, one outlier among n values cannot reach 3 sigma
    // ((n-1)/sqrt(n) < 3), and the test would reject nothing.
    testkit::run_python(
        &py,
        r#"
import os, sys, numpy as np
from astropy.io import fits
os.chdir(sys.argv[1]); os.mkdir('frames')
rng = np.random.default_rng(12)
y, x = np.mgrid[0:37, 0:53]
for i in range(16):
    a = 1000 + 2 * x + y + 5 * i + rng.normal(0, 10, x.shape)
    hot = rng.random(x.shape) < 0.04
    a[hot] += rng.uniform(300, 4000, hot.sum())
    fits.writeto(f'frames/f{i:02}.fits', a.astype(np.float32))
"#,
        &[d.to_str().unwrap()],
    );
    let out = sh(&format!(
        "cd {} && find frames -name '*.fits' | mem-estimate | chunk-plan --for fits-stack -m 64MiB \
         | strip-convert --stack sigma-clip --output master.fits",
        d.display()
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let recs = ndjson(&out.stdout);
    assert_eq!(recs.len(), 1, "{recs:?}");
    let s = &recs[0]["strip-convert"];
    assert_eq!(s["status"], "ok", "{s}");
    assert_eq!(s["inputs"].as_array().unwrap().len(), 16, "{s}");
    assert!(s["peak_rss"].as_u64().unwrap() <= 64 << 20, "{s}");
    let res = testkit::run_python(
        &py,
        r#"
import os, sys, glob, numpy as np
from astropy.io import fits
from astropy.stats import sigma_clip
os.chdir(sys.argv[1])
cube = np.stack([fits.getdata(f).astype('f8') for f in sorted(glob.glob('frames/*.fits'))])
c = sigma_clip(cube, sigma=3, maxiters=None, cenfunc='median', stdfunc='std', axis=0)
want = c.mean(0).filled(np.nan)
got = fits.getdata('master.fits')
assert fits.getheader('master.fits')['NCOMBINE'] == 16
print(np.max(np.abs(got - want) / np.abs(want)), int(c.mask.sum()))
"#,
        &[d.to_str().unwrap()],
    );
    let mut it = res.split_whitespace();
    let err: f64 = it.next().unwrap().parse().unwrap();
    let rejected: u64 = it.next().unwrap().parse().unwrap();
    assert!(err < 1e-5, "relative error {err}");
    assert!(rejected > 0, "the test rejects nothing");
}
