//! `cargo xtask reliability`, short: every processing tool killed at random moments, on a
//! full disk (where a tmpfs can be mounted), run twice at once and on a few mutants, on
//! two inputs each. Every figure of the table must be zero.

use std::process::Command;

#[test]
fn every_processing_tool_survives_kills_full_disks_and_concurrent_runs() {
    let Some(python) = testkit::python(&["jpylyzer", "laspy", "astropy"]) else {
        return;
    };
    for t in ["strip-convert", "laz-enrich", "cbz-stream"] {
        testkit::bin(t);
    }
    let bin_dir = testkit::bin("cbz-stream").parent().unwrap().to_path_buf();
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .current_dir(testkit::workspace_root())
        .env("MEMBUDGET_PYTHON", &python)
        .args([
            "reliability",
            "--kills",
            "4",
            "--fuzz-cases",
            "4",
            "--max-inputs",
            "2",
        ])
        .arg("--bin-dir")
        .arg(&bin_dir)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{table}\n{stderr}");
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| tool"))
        .collect();
    for job in [
        "strip-convert",
        "laz-enrich",
        "cbz-stream pack",
        "cbz-stream unpack",
        "cbz-stream edit",
        "cbz-stream from-pdf",
    ] {
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| {job} |")))
            .unwrap_or_else(|| panic!("no row for {job}:\n{table}"));
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // | tool | inputs | kills | crashes .. other | wall |
        let inputs: u64 = cells[2].parse().unwrap();
        assert!(inputs > 0, "{row}");
        for (i, c) in cells[4..11].iter().enumerate() {
            assert_eq!(
                *c,
                "0",
                "{job}: column {} is not zero: {row}\n{table}",
                i + 4
            );
        }
    }
}
