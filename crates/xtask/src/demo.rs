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
use std::process::Command;

/// Bumped whenever the generated inputs change, so an old `target/demo/in` is remade.
const INPUTS_VERSION: &str = "1";

/// The budget every stage plans for.
const MEMORY_LIMIT: &str = "64MiB";

/// Release binaries the pipeline runs. strip-convert, laz-enrich: add the package here.
const PACKAGES: &[&str] = &["mem-estimate", "chunk-plan"];

/// Real files copied from the shared sample data, when it is there (it is beside the
/// checkout on a developer's machine; the demo works without it).
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
        // strip-convert plugs in here when it lands, e.g.
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
    let commands: Vec<Command> = stages
        .iter()
        .map(|s| {
            let mut c = Command::new(&s.argv[0]);
            c.args(&s.argv[1..]).current_dir(root).env("LC_ALL", "C");
            c
        })
        .collect();
    let run = measure::pipeline(commands, None)?;

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
            human_bytes(m.peak_rss),
        ]);
    }
    print_table(&rows);
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
    Ok(())
}

/// Write the inputs (unless they are current) and return how many files there are.
fn make_inputs(root: &Path, demo: &Path, input: &Path) -> Result<usize> {
    let shared = root.join("../shared/data");
    let stamp = demo.join("inputs.stamp");
    let want = format!("{INPUTS_VERSION} shared={}", shared.is_dir());
    if std::fs::read_to_string(&stamp).ok().as_deref() != Some(want.as_str()) {
        eprintln!("xtask: generating sample inputs in target/demo/in");
        if input.exists() {
            std::fs::remove_dir_all(input)?;
        }
        let s = |p: &str| input.join(p);
        // Decoded it is 108 MB, more than the 64 MiB budget: it must be cut into strips.
        samples::tiff(
            &s("scans/map-rgb-6000x6000-lzw.tif"),
            6000,
            6000,
            3,
            TiffCompression::Lzw,
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

/// One row per record: path, format, size, plan, estimate (or the error).
fn print_records(records: &[Value], strip: &str) {
    let mut rows = vec![["path", "format", "size", "plan", "estimate"]
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
        if let Some(e) = r.get("error") {
            let kind = e.get("kind").and_then(Value::as_str).unwrap_or("?");
            let msg = e.get("message").and_then(Value::as_str).unwrap_or("");
            rows.push(vec![
                path,
                format,
                size,
                format!("error: {kind}: {msg}"),
                String::new(),
            ]);
            continue;
        }
        rows.push(vec![
            path,
            format,
            size,
            summarize(r.get("plan")),
            summarize_estimate(r.get("estimate")),
        ]);
    }
    print_table(&rows);
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

/// `estimate` is one entry per tool; show each as `tool: min..whole` when it has those
/// fields, else compactly.
fn summarize_estimate(v: Option<&Value>) -> String {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .map(|(tool, e)| {
                let min = e.get("min_bytes").and_then(Value::as_u64);
                let whole = e.get("whole_bytes").and_then(Value::as_u64);
                match (min, whole) {
                    (Some(a), Some(b)) => format!("{tool}: {}..{}", human_bytes(a), human_bytes(b)),
                    _ => format!("{tool}: {}", summarize(Some(e))),
                }
            })
            .collect::<Vec<_>>()
            .join("; "),
        other => summarize(other),
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
        let plan = serde_json::json!({"budget_bytes": 67108864, "tile": [1024, 512], "threads": 2});
        assert_eq!(
            summarize(Some(&plan)),
            "budget_bytes=64.0 MiB tile=1024x512 threads=2"
        );
        let est =
            serde_json::json!({"strip-convert": {"min_bytes": 1048576, "whole_bytes": 2097152}});
        assert_eq!(
            summarize_estimate(Some(&est)),
            "strip-convert: 1.0 MiB..2.0 MiB"
        );
        assert_eq!(summarize(None), "-");
    }
}
