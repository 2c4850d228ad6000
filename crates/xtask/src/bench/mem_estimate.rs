//! The `mem-estimate` benchmark: probing 10,000 small real files (TIFF, PNG, JPEG, ZIP,
//! FITS, 2,000 of each) from a path list on stdin must reach 5,000 files/s. The peer is
//! `file --mime-type` on the same list through `xargs`: another program that sniffs
//! every file's header, from Debian's `file` package.

use super::{measure, print_table};
use crate::samples::{self, TiffCompression};
use anyhow::{Context, Result};
use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Files to probe.
const FILES: u32 = 10_000;
/// The target from the foundation issue.
const TARGET_PER_SEC: f64 = 5_000.0;
/// Timed runs per program (after one untimed warm-up that fills the page cache).
const RUNS: usize = 3;
/// Bumped whenever the generated files change.
const FILES_VERSION: &str = "1";

/// Generate (once), build, measure both, print; true when the target was met.
pub fn run(root: &Path) -> Result<bool> {
    let dir = root.join("target/bench/mem-estimate");
    let list = make_files(&dir)?;
    let bin = crate::build_release(root, &["mem-estimate"])?;
    let tool = bin.join("mem-estimate");
    crate::suite::install_debian_packages(&[("file", "file")])?;

    let ours: Vec<OsString> = vec![tool.into(), "-q".into()];
    let peer: Vec<OsString> = ["xargs", "file", "--mime-type"]
        .map(OsString::from)
        .to_vec();
    // Warm-up: the page cache then holds every file for both programs alike.
    measure("warm-up", 1, &list, &[0, 1], &ours)?;
    let a = measure("mem-estimate", RUNS, &list, &[0, 1], &ours)?;
    let b = measure("xargs file --mime-type", RUNS, &list, &[0], &peer)?;

    // The tool must have said something true about every file, or its speed means nothing.
    let records = testable_records(&a.stdout)?;
    let errors: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r.get("error").is_some())
        .collect();
    let peer_lines = String::from_utf8_lossy(&b.stdout).lines().count();

    println!(
        "mem-estimate: {} files (2,000 each of TIFF, PNG, JPEG, ZIP, FITS), paths on stdin, \
         median of {RUNS} runs after a warm-up\n",
        FILES
    );
    print_table(u64::from(FILES), "files", &[a.clone(), b]);
    let rate = f64::from(FILES) / a.wall.as_secs_f64().max(1e-9);
    println!(
        "\nrecords: {} ({} with an error); peer lines: {peer_lines}",
        records.len(),
        errors.len()
    );
    if let Some(e) = errors.first() {
        println!("first error: {e}");
    }
    let ok = rate >= TARGET_PER_SEC && errors.is_empty() && records.len() == FILES as usize;
    println!(
        "{}: {rate:.0} files/s against a target of {TARGET_PER_SEC:.0} files/s{}",
        if ok { "PASS" } else { "FAIL" },
        if errors.is_empty() {
            ""
        } else {
            ", and every file must probe without error"
        }
    );
    Ok(ok)
}

fn testable_records(stdout: &[u8]) -> Result<Vec<serde_json::Value>> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).with_context(|| format!("not a JSON record: {l}")))
        .collect()
}

/// Write the files (unless a stamp says they are there) and the path list; returns the
/// list's path.
fn make_files(dir: &Path) -> Result<PathBuf> {
    let list = dir.join("paths.txt");
    let stamp = dir.join("files.stamp");
    let want = format!("{FILES_VERSION} {FILES}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && list.exists() {
        return Ok(list);
    }
    eprintln!("xtask: generating {FILES} files in target/bench/mem-estimate/files");
    let files = dir.join("files");
    if files.exists() {
        std::fs::remove_dir_all(&files)?;
    }
    std::fs::create_dir_all(dir)?;
    let mut paths = std::io::BufWriter::new(std::fs::File::create(&list)?);
    for i in 0..FILES {
        // 100 files per directory, as a scanned collection is laid out.
        let sub = files.join(format!("{:03}", i / 100));
        let side = 16 + (i % 17);
        let path = match i % 5 {
            0 => {
                let p = sub.join(format!("{i:05}.tif"));
                let comp = [
                    TiffCompression::None,
                    TiffCompression::Lzw,
                    TiffCompression::Deflate,
                ][(i / 5 % 3) as usize];
                samples::tiff(&p, side, side + 3, 1 + 2 * (i / 5 % 2), comp, i)?;
                p
            }
            1 => {
                let p = sub.join(format!("{i:05}.png"));
                samples::png(&p, side, side, 1 + 2 * (i / 5 % 2), i)?;
                p
            }
            2 => {
                let p = sub.join(format!("{i:05}.jpg"));
                samples::jpeg(&p, side as u16, side as u16 + 1, i)?;
                p
            }
            3 => {
                let p = sub.join(format!("{i:05}.cbz"));
                samples::zip(&p, 2 + i % 3, 8, i)?;
                p
            }
            _ => {
                let p = sub.join(format!("{i:05}.fits"));
                samples::fits(&p, side, side, i)?;
                p
            }
        };
        writeln!(paths, "{}", path.display())?;
    }
    paths.flush()?;
    std::fs::write(&stamp, want)?;
    Ok(list)
}
