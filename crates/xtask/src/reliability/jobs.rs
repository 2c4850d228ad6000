//! The jobs `cargo xtask reliability` runs: one per processing tool (and per cbz-stream
//! subcommand), each with its inputs made from tests/data and its command line.
//!
//! A new processing tool (tile-enhance) adds one [`Job`] to [`JOBS`]: its binary, its
//! arguments and a function that writes its inputs.

use anyhow::{ensure, Context, Result};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One job: a tool's command line over a set of inputs, writing into `{out}`.
#[derive(Debug, Clone, Copy)]
pub struct Job {
    /// The row of the table (`cbz-stream pack`).
    pub name: &'static str,
    /// The binary.
    pub program: &'static str,
    /// Arguments before the inputs; `{out}` is the output directory.
    pub args: &'static [&'static str],
    /// Writes the job's inputs into the directory given and returns their names (the
    /// tool runs in that directory, so the outputs land flat in `{out}`).
    pub inputs: fn(&Path, &Path) -> Result<Vec<String>>,
    /// Edits its inputs in place (cbz-stream edit): the input is the output, checked
    /// as an output, never as a source that must stay unchanged.
    pub in_place: bool,
    /// Writes scratch files (laz-enrich's pass files) under `$TMPDIR`.
    pub scratch_in_tmpdir: bool,
}

/// Every job, one per processing tool or subcommand.
pub const JOBS: &[Job] = &[
    Job {
        name: "strip-convert",
        program: "strip-convert",
        args: &["-o", "{out}"],
        inputs: tiffs,
        in_place: false,
        scratch_in_tmpdir: false,
    },
    Job {
        name: "laz-enrich",
        program: "laz-enrich",
        args: &["-R", "1.5", "-o", "{out}"],
        inputs: lazs,
        in_place: false,
        scratch_in_tmpdir: true,
    },
    Job {
        name: "cbz-stream pack",
        program: "cbz-stream",
        args: &["pack", "-o", "{out}"],
        inputs: page_dirs,
        in_place: false,
        scratch_in_tmpdir: false,
    },
    Job {
        name: "cbz-stream unpack",
        program: "cbz-stream",
        args: &["unpack", "-o", "{out}"],
        inputs: cbzs,
        in_place: false,
        scratch_in_tmpdir: false,
    },
    Job {
        name: "cbz-stream edit",
        program: "cbz-stream",
        args: &["edit", "--drop-junk", "--rename"],
        inputs: cbzs_to_edit,
        in_place: true,
        scratch_in_tmpdir: false,
    },
    Job {
        name: "cbz-stream from-pdf",
        program: "cbz-stream",
        args: &["from-pdf", "--dpi", "100", "-o", "{out}"],
        inputs: pdfs,
        in_place: false,
        scratch_in_tmpdir: false,
    },
];

fn data(rel: &str) -> PathBuf {
    testkit::data(rel)
}

fn copy(from: &Path, dir: &Path, name: &str) -> Result<String> {
    std::fs::copy(from, dir.join(name)).with_context(|| format!("copying {}", from.display()))?;
    Ok(name.to_string())
}

/// The TIFFs of tests/data/tiff (not its fuzz cases) and the scikit-image pages; the
/// ones strip-convert refuses are dropped by the calibration run.
fn tiffs(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let src = data("tiff");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&src)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && p.extension().is_some_and(|e| {
                    e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff")
                })
        })
        .collect();
    files.sort();
    for f in files {
        names.push(copy(&f, dir, &f.file_name().unwrap().to_string_lossy())?);
    }
    names.push(copy(&data("images/multipage.tif"), dir, "multipage.tif")?);
    Ok(names)
}

/// The six adjacent IGN tiles and two las-rs samples.
fn lazs(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let ign = data("laz/ign");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&ign)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("test_data_770"))
        })
        .collect();
    files.sort();
    for f in files {
        names.push(copy(&f, dir, &f.file_name().unwrap().to_string_lossy())?);
    }
    names.push(copy(&data("laz/autzen.laz"), dir, "autzen.laz")?);
    names.push(copy(
        &data("laz/32-1-472-150-76.laz"),
        dir,
        "32-1-472-150-76.laz",
    )?);
    Ok(names)
}

/// Six page directories (the scikit-image pictures under names in the wrong order, and a
/// Thumbs.db).
fn page_dirs(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    let pics = [
        "images/astronaut.png",
        "images/page.png",
        "images/hubble_deep_field.jpg",
    ];
    let mut names = Vec::new();
    for i in 0..6 {
        let name = format!("book{i}");
        let d = dir.join(&name);
        std::fs::create_dir_all(&d)?;
        for (k, p) in pics.iter().enumerate() {
            let ext = Path::new(p).extension().unwrap().to_string_lossy();
            // p1, p10, p2: only a natural sort puts them right.
            let page = [1, 10, 2][k];
            copy(&data(p), &d, &format!("p{page}.{ext}"))?;
        }
        std::fs::write(d.join("Thumbs.db"), b"junk")?;
        names.push(name);
    }
    Ok(names)
}

/// Archives of [`page_dirs`] made by `zip -0` (not by the tool under test).
fn zip_books(dir: &Path, junk: bool) -> Result<Vec<String>> {
    let pages = dir.join(".pages");
    let books = page_dirs(&pages, Path::new(""))?;
    let mut names = Vec::new();
    for b in books {
        let name = format!("{b}.cbz");
        let mut files: Vec<String> = std::fs::read_dir(pages.join(&b))?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| junk || n != "Thumbs.db")
            .collect();
        files.sort();
        // zip adds to an archive that is there: start from nothing.
        let _ = std::fs::remove_file(dir.join(&name));
        let mut cmd = Command::new("zip");
        cmd.current_dir(pages.join(&b))
            .args(["-q", "-0", "-X"])
            .arg(dir.join(&name))
            .args(&files);
        let st = cmd.status().context("running zip (apt-get install zip)")?;
        ensure!(st.success(), "zip failed ({st})");
        names.push(name);
    }
    std::fs::remove_dir_all(&pages)?;
    Ok(names)
}

fn cbzs(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    zip_books(dir, false)
}

fn cbzs_to_edit(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    zip_books(dir, true)
}

/// Three copies of each sample PDF: four embedded JPEG pages (copied) and two vector
/// pages (rendered by pdftoppm).
fn pdfs(dir: &Path, _bin: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for i in 0..3 {
        names.push(copy(
            &data("pdf/scanned-jpeg-4p.pdf"),
            dir,
            &format!("scan{i}.pdf"),
        )?);
        names.push(copy(
            &data("pdf/vector-2p.pdf"),
            dir,
            &format!("vector{i}.pdf"),
        )?);
    }
    Ok(names)
}
