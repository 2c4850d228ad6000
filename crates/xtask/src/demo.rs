//! `cargo xtask demo`: make sample inputs deterministically in `target/demo/in`, then run
//! the real pipeline on them through real pipes and print what came out, with the peak
//! RSS of every stage as the kernel measured it.
//!
//! The demo grows as tools land: a new tool adds its package to [`PACKAGES`] and its
//! stage to [`stages`] (both marked below), and the table shows its section.

use crate::measure;
use crate::samples::{self, TiffCompression};
use anyhow::{bail, Context, Result};
use membudget::budget::human_bytes;
use serde_json::Value;
use std::ffi::OsString;
use std::path::Path;

/// Bumped whenever the generated inputs change, so an old `target/demo/in` is remade.
const INPUTS_VERSION: &str = "3";

/// The budget every stage plans for.
const MEMORY_LIMIT: &str = "64MiB";

/// Release binaries the pipeline runs. strip-convert, laz-enrich: add the package here.
const PACKAGES: &[&str] = &[
    "mem-estimate",
    "chunk-plan",
    "strip-convert",
    "laz-enrich",
    "cbz-stream",
    "tile-enhance",
];

/// Real files copied from the repository's sample data (`tests/data`).
const SHARED: &[&str] = &[
    "tiff/kodim07-lzw.tif",
    "tiff/tiled-rgb-u8.tif",
    "tiff/BigTIFF.tif",
    "images/hubble_deep_field.jpg",
    "fits/o4sp040b0_raw.fits",
    "laz/autzen.copc.laz",
    "laz/ign/test_data_77050_627755_LA93_IGN69.laz",
    "pdf/scanned-jpeg-4p.pdf",
];

/// One stage of the pipeline: a label for the table and its command line.
#[derive(Debug)]
struct Stage {
    label: &'static str,
    argv: Vec<OsString>,
}

/// The pipeline, in order. Each stage reads the previous one's stdout.
fn stages(bin: &Path, input: &Path) -> Vec<Stage> {
    let tool = |name: &str| bin.join(name).into_os_string();
    vec![
        Stage {
            label: "find",
            argv: vec!["find".into(), input.into(), "-type".into(), "f".into()],
        },
        // Sorted so the demo prints the same table on every machine.
        Stage {
            label: "sort",
            argv: vec!["sort".into()],
        },
        Stage {
            label: "mem-estimate",
            argv: vec![tool("mem-estimate")],
        },
        Stage {
            label: "chunk-plan",
            argv: vec![
                tool("chunk-plan"),
                "--memory-limit".into(),
                MEMORY_LIMIT.into(),
            ],
        },
        // strip-convert runs here, e.g.
        // Stage { label: "strip-convert", argv: vec![tool("strip-convert"),
        //     "--memory-limit".into(), MEMORY_LIMIT.into(), "-o".into(), out.into()] },
        // laz-enrich likewise.
    ]
}

/// Generate the inputs, build, run, print.
pub fn run(root: &Path) -> Result<()> {
    let demo = root.join("target/demo");
    let input = demo.join("in");
    let count = make_inputs(root, &demo, &input)?;
    let bin = crate::build_release(root, PACKAGES)?;

    let stages = stages(&bin, Path::new("target/demo/in"));
    let shown: Vec<String> = stages
        .iter()
        .map(|s| {
            let mut words = vec![s.label.to_string()];
            words.extend(s.argv[1..].iter().map(|a| a.to_string_lossy().into_owned()));
            words.join(" ")
        })
        .collect();
    println!("$ {}\n", shown.join(" | "));
    let argvs: Vec<Vec<OsString>> = stages.iter().map(|s| s.argv.clone()).collect();
    let run = measure::pipeline(&argvs, None, |c| {
        c.current_dir(root).env("LC_ALL", "C");
    })?;

    let records: Vec<Value> = String::from_utf8_lossy(&run.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON record: {l}")))
        .collect::<Result<_>>()?;
    print_records(&records, "target/demo/in/");

    println!();
    let mut rows = vec![vec![
        "stage".to_string(),
        "exit".to_string(),
        "peak RSS".to_string(),
    ]];
    for (s, m) in stages.iter().zip(&run.stages) {
        rows.push(vec![
            s.label.to_string(),
            m.status
                .code()
                .map_or_else(|| m.status.to_string(), |c| c.to_string()),
            m.shown(),
        ]);
    }
    print_table(&rows);
    if run.stages.iter().any(|m| !m.is_own()) {
        println!("{}", measure::FLOOR_NOTE);
    }
    let failed = records.iter().filter(|r| r.get("error").is_some()).count();
    println!(
        "\n{} inputs, {} records, {} with an error (exit 1 says so), {:.2} s wall, budget {}",
        count,
        records.len(),
        failed,
        run.wall.as_secs_f64(),
        MEMORY_LIMIT
    );

    // Exit 1 is expected: the demo includes a broken file on purpose.
    for (s, m) in stages.iter().zip(&run.stages) {
        if !matches!(m.status.code(), Some(0 | 1)) {
            bail!("stage {} ended with {}", s.label, m.status);
        }
    }
    if records.len() != count {
        bail!("{count} inputs but {} records came out", records.len());
    }

    let tool = |name: &str| bin.join(name).into_os_string();
    let convert: Vec<Vec<OsString>> = vec![
        vec![
            "find".into(),
            "target/demo/in".into(),
            "-name".into(),
            "*.tif".into(),
        ],
        vec!["sort".into()],
        vec![tool("mem-estimate")],
        vec![
            tool("chunk-plan"),
            "--for".into(),
            "strip-convert".into(),
            "-m".into(),
            MEMORY_LIMIT.into(),
        ],
        vec![
            tool("strip-convert"),
            "-m".into(),
            MEMORY_LIMIT.into(),
            "-f".into(),
            "--base".into(),
            "target/demo/in".into(),
            "-o".into(),
            "target/demo/jp2".into(),
        ],
    ];
    run_processing(root, "strip-convert", &convert)?;

    // The generated tile, and a real IGN tile from the repository's sample data.
    let mut clouds: Vec<OsString> = vec!["target/demo/in/lidar/tile-100m.laz".into()];
    let ign = "shared/laz/ign/test_data_77050_627755_LA93_IGN69.laz";
    if input.join(ign).is_file() {
        clouds.push(format!("target/demo/in/{ign}").into());
    }
    let clouds: Vec<&str> = clouds.iter().filter_map(|c| c.to_str()).collect();
    let enrich = stage(
        tool("laz-enrich"),
        &["-R", "1"],
        "target/demo/enriched",
        &clouds,
    );
    run_processing(root, "laz-enrich", &[enrich])?;

    // FITS frames through strip-convert: the generated frame's Bayer planes.
    let split = stage(
        tool("strip-convert"),
        &["--split-cfa", "RGGB"],
        "target/demo/fits",
        &["target/demo/in/astro/frame-2048x2048.fits"],
    );
    run_processing(root, "strip-convert", &[split])?;

    // Comic archives: a scanned PDF's page JPEGs copied into a CBZ as they are, then the
    // generated comic unpacked one entry at a time.
    let from_pdf = stage(
        tool("cbz-stream"),
        &["from-pdf"],
        "target/demo/cbz",
        &["target/demo/in/shared/pdf/scanned-jpeg-4p.pdf"],
    );
    run_processing(root, "cbz-stream", &[from_pdf])?;
    let unpack = stage(
        tool("cbz-stream"),
        &["unpack"],
        "target/demo/unpacked",
        &["target/demo/in/comics/issue-01.cbz"],
    );
    run_processing(root, "cbz-stream", &[unpack])?;

    // Enhancement: the default chain then an unsharp mask, on a Deflate map scan larger
    // than the budget and a PNG photo; bands of rows with halos, statistics pass first.
    let enhance = stage(
        tool("tile-enhance"),
        &["enhance", "--default-chain", "--unsharp", "1,0.6"],
        "target/demo/enhanced",
        &[
            "target/demo/in/scans/map-rgb-6000x6000-deflate.tif",
            "target/demo/in/images/photo-1200x800.png",
        ],
    );
    run_processing(root, "tile-enhance", &[enhance])?;

    // Stars on the Hubble Deep Field, tile by tile (FWHM 3 px), and shrink-on-load
    // thumbnails (the JPEG decoded at a reduced DCT scale).
    let spots = stage(
        tool("tile-enhance"),
        &["spots", "--fwhm", "3"],
        "target/demo/spots",
        &["target/demo/in/shared/images/hubble_deep_field.jpg"],
    );
    // Its records' section is `spots`.
    run_processing(root, "spots", &[spots])?;
    let mut thumbs = stage(
        tool("tile-enhance"),
        &["thumbnail", "--size", "256"],
        "target/demo/thumbs",
        &[
            "target/demo/in/images/photo-1600x1200.jpg",
            "target/demo/in/scans/map-rgb-6000x6000-deflate.tif",
        ],
    );
    // Thumbnails hold a band and the small image: no budget option.
    if let Some(i) = thumbs.iter().position(|a| a == "-m") {
        thumbs.drain(i..i + 2);
    }
    run_processing(root, "tile-enhance", &[thumbs])?;
    Ok(())
}

/// One processing tool's command line: `head` (subcommand, options), then the budget,
/// `--force`, outputs mirrored from `target/demo/in` under `out`, and the inputs.
fn stage(program: OsString, head: &[&str], out: &str, inputs: &[&str]) -> Vec<OsString> {
    let mut argv = vec![program];
    argv.extend(head.iter().map(OsString::from));
    for a in [
        "-m",
        MEMORY_LIMIT,
        "-f",
        "--base",
        "target/demo/in",
        "-o",
        out,
    ] {
        argv.push(a.into());
    }
    argv.extend(inputs.iter().map(OsString::from));
    argv
}

/// Run a processing pipeline, then print one row per record (read from its `section`:
/// output, its size, the tool's own peak RSS) and the peak RSS of every stage.
fn run_processing(root: &Path, section: &str, argvs: &[Vec<OsString>]) -> Result<()> {
    let shown: Vec<String> = argvs
        .iter()
        .map(|a| {
            let first = Path::new(&a[0]).file_name().unwrap_or(a[0].as_os_str());
            let mut words = vec![first.to_string_lossy().into_owned()];
            words.extend(a[1..].iter().map(|w| w.to_string_lossy().into_owned()));
            words.join(" ")
        })
        .collect();
    println!("\n$ {}\n", shown.join(" | "));
    let run = measure::pipeline(argvs, None, |c| {
        c.current_dir(root).env("LC_ALL", "C");
    })?;
    let mut largest_record_peak = 0u64;
    let mut rows = vec![["path", "status", "output", "size", "peak RSS"]
        .map(String::from)
        .to_vec()];
    for line in String::from_utf8_lossy(&run.stdout).lines() {
        let r: Value =
            serde_json::from_str(line).with_context(|| format!("not a JSON record: {line}"))?;
        let path = r.get("path").and_then(Value::as_str).unwrap_or("-");
        let path = path
            .strip_prefix("target/demo/in/")
            .unwrap_or(path)
            .to_string();
        let section = r.get(section);
        let field = |k: &str| section.and_then(|s| s.get(k));
        let status = match (r.get("error"), field("status").and_then(Value::as_str)) {
            (Some(e), _) => format!(
                "error: {}",
                e.get("kind").and_then(Value::as_str).unwrap_or("?")
            ),
            (None, Some(s)) => s.to_string(),
            (None, None) => "-".to_string(),
        };
        let output = field("output")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        let size =
            std::fs::metadata(root.join(&output)).map_or("-".to_string(), |m| human_bytes(m.len()));
        let peak = field("peak_rss").and_then(Value::as_u64);
        largest_record_peak = largest_record_peak.max(peak.unwrap_or(0));
        let rss = peak.map_or("-".to_string(), human_bytes);
        rows.push(vec![path, status, output, size, rss]);
    }
    print_table(&rows);
    println!();
    let mut stages = vec![vec![
        "stage".to_string(),
        "exit".to_string(),
        "peak RSS".to_string(),
    ]];
    let last = run.stages.len().saturating_sub(1);
    for (i, (label, m)) in shown.iter().zip(&run.stages).enumerate() {
        let label = label.split(' ').next().unwrap_or("-").to_string();
        let code = m
            .status
            .code()
            .map_or_else(|| m.status.to_string(), |c| c.to_string());
        // The tool resets its high-water mark before each input (each record carries its
        // own peak), so the kernel's figure at exit is the last input's: the stage's real
        // peak is the larger of that and the records' peaks.
        let peak = if i == last && largest_record_peak > m.peak_rss {
            format!("{} (largest input's)", human_bytes(largest_record_peak))
        } else {
            m.shown()
        };
        stages.push(vec![label, code, peak]);
    }
    print_table(&stages);
    println!(
        "{:.2} s wall, budget {}",
        run.wall.as_secs_f64(),
        MEMORY_LIMIT
    );
    for (label, m) in shown.iter().zip(&run.stages) {
        if !matches!(m.status.code(), Some(0 | 1)) {
            bail!("stage {label} ended with {}", m.status);
        }
    }
    Ok(())
}

/// Write the inputs (unless they are current) and return how many files there are.
fn make_inputs(root: &Path, demo: &Path, input: &Path) -> Result<usize> {
    // The real sample files kept in the repository (tests/data), copied under shared/.
    let shared = root.join("tests/data");
    let stamp = demo.join("inputs.stamp");
    let want = format!("{INPUTS_VERSION} shared={}", shared.is_dir());
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!("xtask: generating sample inputs in target/demo/in");
        let started = std::time::Instant::now();
        if input.exists() {
            std::fs::remove_dir_all(input)?;
        }
        let s = |p: &str| input.join(p);
        // Decoded it is 108 MB, more than the 64 MiB budget: it must be cut into strips.
        samples::tiff(
            &s("scans/map-rgb-6000x6000-deflate.tif"),
            6000,
            6000,
            3,
            TiffCompression::Deflate,
            1,
        )?;
        samples::tiff(
            &s("scans/page-gray-2480x3508-deflate.tif"),
            2480,
            3508,
            1,
            TiffCompression::Deflate,
            2,
        )?;
        samples::tiff(
            &s("scans/thumb-rgb-640x480.tif"),
            640,
            480,
            3,
            TiffCompression::None,
            3,
        )?;
        samples::png(&s("images/photo-1200x800.png"), 1200, 800, 3, 4)?;
        samples::jpeg(&s("images/photo-1600x1200.jpg"), 1600, 1200, 5)?;
        samples::fits(&s("astro/frame-2048x2048.fits"), 2048, 2048, 6)?;
        samples::zip(&s("comics/issue-01.cbz"), 12, 256, 7)?;
        // 100 m x 100 m at 10 points/m2: 100,000 points, a small IGN-like tile.
        samples::laz(&s("lidar/tile-100m.laz"), 100.0, 10.0, 8)?;
        // A broken file on purpose: failures are records too.
        samples::truncated_tiff(&s("broken/truncated.tif"))?;
        if shared.is_dir() {
            for rel in SHARED {
                let from = shared.join(rel);
                if from.is_file() {
                    let to = input.join("shared").join(rel);
                    std::fs::create_dir_all(to.parent().unwrap_or(input))?;
                    std::fs::copy(&from, &to)
                        .with_context(|| format!("copying {}", from.display()))?;
                }
            }
        }
        std::fs::write(&stamp, &want)?;
        eprintln!(
            "xtask: generated in {:.1} s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(count_files(input))
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count_files(&e.path()),
                    Ok(t) if t.is_file() => 1,
                    _ => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// One row per record and tool: path, format, size, then for each tool that can process
/// the input its estimate (smallest chunk / whole input at once) and its plan. Errors show
/// as such.
fn print_records(records: &[Value], strip: &str) {
    let mut rows = vec![[
        "path",
        "format",
        "size",
        "tool",
        "min chunk / whole input",
        "plan",
    ]
    .map(String::from)
    .to_vec()];
    for r in records {
        let path = r.get("path").and_then(Value::as_str).unwrap_or("-");
        let path = path.strip_prefix(strip).unwrap_or(path).to_string();
        let format = r
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or("-")
            .to_string();
        let size = r
            .get("bytes")
            .and_then(Value::as_u64)
            .map_or("-".to_string(), human_bytes);
        let mut head = vec![path, format, size];
        if let Some(e) = r.get("error") {
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or("?");
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            head.extend(["error".to_string(), kind.to_string(), msg.to_string()]);
            rows.push(head);
            continue;
        }
        let estimate = r.get("estimate").and_then(Value::as_object);
        let plan = r.get("plan").and_then(Value::as_object);
        let mut tools: Vec<&String> = estimate.into_iter().flat_map(|m| m.keys()).collect();
        for k in plan.into_iter().flat_map(|m| m.keys()) {
            if !tools.contains(&k) && plan.is_some_and(|p| p[k].is_object()) {
                tools.push(k);
            }
        }
        if tools.is_empty() {
            head.extend(["-", "-", "-"].map(String::from));
            rows.push(head.clone());
        }
        for (i, tool) in tools.into_iter().enumerate() {
            let mut row = if i == 0 {
                head.clone()
            } else {
                vec![String::new(); 3]
            };
            row.push(tool.clone());
            row.push(summarize_estimate(estimate.and_then(|m| m.get(tool))));
            row.push(summarize_plan(plan.and_then(|m| m.get(tool))));
            rows.push(row);
        }
    }
    print_table(&rows);
}

/// `estimate.<tool>` as `min / whole`. Not a range: for a tiny input the whole-input
/// footprint (no chunking machinery) can be below the smallest chunk's.
fn summarize_estimate(v: Option<&Value>) -> String {
    let Some(e) = v else {
        return "-".into();
    };
    match (
        e.get("min_bytes").and_then(Value::as_u64),
        e.get("whole_bytes").and_then(Value::as_u64),
    ) {
        (Some(a), Some(b)) => format!("{} / {}", human_bytes(a), human_bytes(b)),
        _ => summarize(Some(e)),
    }
}

/// `plan.<tool>` as its geometry, workers and predicted peak, or its error.
fn summarize_plan(v: Option<&Value>) -> String {
    let Some(Value::Object(p)) = v else {
        return "-".into();
    };
    if let Some(e) = p.get("error") {
        return format!(
            "refused: {}",
            e.get("message").and_then(Value::as_str).unwrap_or("?")
        );
    }
    const BOOKKEEPING: &[&str] = &[
        "chunk",
        "chunk_unit",
        "workers",
        "predicted_peak_bytes",
        "min_bytes",
        "whole_bytes",
    ];
    let geometry: Vec<String> = p
        .iter()
        .filter(|(k, _)| !BOOKKEEPING.contains(&k.as_str()))
        .map(|(k, v)| format!("{k}={}", scalar(k, v)))
        .collect();
    let mut out = geometry.join(" ");
    if let Some(w) = p.get("workers") {
        out.push_str(&format!(" workers={w}"));
    }
    if let Some(b) = p.get("predicted_peak_bytes").and_then(Value::as_u64) {
        out.push_str(&format!(" peak~{}", human_bytes(b)));
    }
    out.trim().to_string()
}

/// A section as `key=value` pairs, byte counts in binary units.
fn summarize(v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(k, v)| format!("{k}={}", scalar(k, v)))
            .collect::<Vec<_>>()
            .join(" "),
        Some(other) => other.to_string(),
    }
}

fn scalar(key: &str, v: &Value) -> String {
    match v {
        Value::Number(n) if key.ends_with("bytes") => {
            n.as_u64().map_or_else(|| n.to_string(), human_bytes)
        }
        Value::Array(a) => a
            .iter()
            .map(|x| scalar("", x))
            .collect::<Vec<_>>()
            .join("x"),
        Value::String(s) => s.clone(),
        Value::Object(_) => "{..}".into(),
        other => other.to_string(),
    }
}

/// Left-aligned columns separated by two spaces.
pub fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let line: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = widths[c]))
            .collect();
        println!("{}", line.join("  ").trim_end());
        if i == 0 {
            let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
            println!("{}", rule.join("  "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_are_readable() {
        let plan = serde_json::json!({"chunk": 1024, "chunk_unit": "tile_side",
            "tile": [1024, 512], "halo": 16, "workers": 2, "predicted_peak_bytes": 67108864,
            "min_bytes": 1, "whole_bytes": 2});
        assert_eq!(
            summarize_plan(Some(&plan)),
            "tile=1024x512 halo=16 workers=2 peak~64.0 MiB"
        );
        let refused = serde_json::json!({"error": {"kind": "budget", "message": "needs 2 MiB"}});
        assert_eq!(summarize_plan(Some(&refused)), "refused: needs 2 MiB");
        let est = serde_json::json!({"min_bytes": 1048576, "whole_bytes": 2097152});
        assert_eq!(summarize_estimate(Some(&est)), "1.0 MiB / 2.0 MiB");
        assert_eq!(summarize(None), "-");
    }
}
