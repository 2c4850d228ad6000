//! The `cbz-stream` benchmark (issue 13), same run, alternating rounds, median wall:
//! - `pack` of about 2 GB of JPEG pages against `zip -0 -r`, `unpack` against `unzip`
//!   (target: wall <= 1.0x the peer, peak RSS <= 16 MiB);
//! - `edit --remove` of one page of that archive against `zip -d` on a copy (target:
//!   wall <= 1.2x);
//! - `from-pdf` on a 500-page scanned PDF (made with img2pdf) against `pdfimages -all`
//!   (target: wall <= 1.5x, pages byte-identical), and on its first 50 pages against
//!   `pdftoppm -r 300 -jpeg` (target: >= 20x faster; 50 pages because rendering 500 at
//!   300 DPI takes minutes on two cores).
//!
//! The pages are 48 distinct photo-like A4 scans at 300 DPI (2480x3508, JPEG q85) written
//! from the samples' seeded pattern, hard-linked under page names until they reach 2 GB:
//! both programs read the same files through the page cache, so repeats cost nothing
//! that distinct files would not.
//!
//! Each from-pdf run starts after a `sync` (outside the timing), so that our final
//! fsync does not wait behind what the previous run left unwritten.
//!
//! `MEMBUDGET_BENCH_ONLY=from-pdf` (or `archives`: pack, unpack and edit) runs only that
//! part.

use super::{alternate as alternate_rounds, argv as args, remove, Contender, Sample};
use anyhow::{Context, Result};
use membudget::budget::human_bytes;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bytes of pages to pack.
const PACK_BYTES: u64 = 2_000_000_000;
/// Distinct page images.
const DISTINCT: u32 = 48;
/// Pages of the big PDF, and of the one rendered by pdftoppm.
const PDF_PAGES: usize = 500;
const RENDER_PAGES: usize = 50;
/// Alternating rounds per comparison.
const ROUNDS: usize = 3;
/// Peak RSS target of pack and unpack.
const RSS_TARGET: u64 = 16 << 20;
/// Bumped whenever the generated inputs change.
const VERSION: &str = "1";

/// img2pdf at a fixed 300 DPI, so the pages are A4 and pdftoppm -r 300 renders them at
/// their own pixel size.
const MAKE_PDF: &str = r#"
import sys, img2pdf
out, pages = sys.argv[1], sys.argv[2:]
layout = img2pdf.get_fixed_dpi_layout_fun((300, 300))
with open(out, "wb") as f:
    img2pdf.convert(pages, layout_fun=layout, outputstream=f)
"#;

/// Our archive's pages, in order, must be the bytes pdfimages wrote, in order.
const SAME_PAGES: &str = r#"
import sys, os, zipfile
cbz, d = sys.argv[1], sys.argv[2]
ours = [n for n in sorted(zipfile.ZipFile(cbz).namelist()) if n.lower().endswith((".jpg", ".jpeg"))]
theirs = sorted(f for f in os.listdir(d) if f.endswith(".jpg"))
z = zipfile.ZipFile(cbz)
same = len(ours) == len(theirs) and all(z.read(a) == open(os.path.join(d, b), "rb").read() for a, b in zip(ours, theirs))
print(f"{len(ours)} pages in the CBZ, {len(theirs)} from pdfimages, byte-identical: {same}")
sys.exit(0 if same else 1)
"#;

fn alternate(contenders: &[Contender]) -> Result<Vec<Sample>> {
    alternate_rounds(ROUNDS, contenders)
}

fn need(cmd: &str) -> Result<()> {
    anyhow::ensure!(
        crate::suite::have_command(cmd),
        "{cmd} is needed by this benchmark (cargo xtask test installs it)"
    );
    Ok(())
}

/// Whether comparison `what` is to run (`MEMBUDGET_BENCH_ONLY`, all when unset).
fn wanted(what: &str) -> bool {
    super::only(what).unwrap_or(true)
}

/// Generate (once), build, measure, print; true when every target was met.
pub fn run(root: &Path) -> Result<bool> {
    for c in ["zip", "unzip", "pdfimages", "pdftoppm"] {
        need(c)?;
    }
    let dir = root.join("target/bench/cbz-stream");
    let python = crate::suite::ensure_venv(root)?;
    let (pages, distinct) = make_pages(&dir)?;
    let bin = crate::build_release(root, &["cbz-stream"])?;
    // A private copy: another build may relink the binary while the bench runs.
    let tool = dir.join("cbz-stream");
    std::fs::copy(bin.join("cbz-stream"), &tool).context("copying cbz-stream")?;
    let mut ok = true;

    if wanted("archives") {
        // pack and zip -0 -r: the same directory, the same (stored) entries.
        let cbz = dir.join("pack.cbz");
        let zipped = dir.join("pack.zip");
        let total: u64 = std::fs::read_dir(&pages)?
            .filter_map(|e| e.ok()?.metadata().ok())
            .map(|m| m.len())
            .sum();
        let s = alternate(&[
            Contender {
                name: "cbz-stream pack".into(),
                argv: args(&[&tool, &"-q", &"pack", &"-f", &pages, &"-o", &cbz]),
                before: Box::new(|| remove(&cbz)),
            },
            Contender {
                name: "zip -0 -r".into(),
                argv: args(&[&"zip", &"-q", &"-0", &"-r", &zipped, &pages]),
                before: Box::new(|| remove(&zipped)),
            },
        ])
        .map_err(|e| e.context("pack"))?;
        ok &= report("pack", total, &s, 1.0, Some(RSS_TARGET));

        // unpack and unzip, from our archive (the same entries).
        let out_a = dir.join("unpack-ours");
        let out_b = dir.join("unpack-unzip");
        let s = alternate(&[
            Contender {
                name: "cbz-stream unpack".into(),
                argv: args(&[&tool, &"-q", &"unpack", &"-f", &cbz, &"-o", &out_a]),
                before: Box::new(|| remove(&out_a)),
            },
            Contender {
                name: "unzip".into(),
                argv: args(&[&"unzip", &"-q", &"-o", &cbz, &"-d", &out_b]),
                before: Box::new(|| remove(&out_b)),
            },
        ])
        .map_err(|e| e.context("unpack"))?;
        ok &= report("unpack", total, &s, 1.0, Some(RSS_TARGET));
        remove(&out_a)?;
        remove(&out_b)?;

        // edit --remove 5 against zip -d of the same entry, each on a fresh copy.
        let victim = first_entries(&python, &cbz, 5)?
            .pop()
            .context("no fifth page")?;
        let ed_a = dir.join("edit.cbz");
        let ed_b = dir.join("edit.zip");
        let s = alternate(&[
            Contender {
                name: "cbz-stream edit --remove 5".into(),
                argv: args(&[&tool, &"-q", &"edit", &"--remove", &"5", &ed_a]),
                before: Box::new(|| copy(&cbz, &ed_a)),
            },
            Contender {
                name: "zip -d".into(),
                argv: args(&[&"zip", &"-q", &"-d", &ed_b, &victim]),
                before: Box::new(|| copy(&cbz, &ed_b)),
            },
        ])
        .map_err(|e| e.context("edit"))?;
        ok &= report("edit", total, &s, 1.2, None);
        remove(&ed_a)?;
        remove(&ed_b)?;
        remove(&cbz)?;
        remove(&zipped)?;
    }
    if !wanted("from-pdf") {
        return Ok(ok);
    }

    // from-pdf against pdfimages -all (500 pages) and pdftoppm (50 pages).
    let big = make_pdf(&python, &dir, &distinct, PDF_PAGES)?;
    let small = make_pdf(&python, &dir, &distinct, RENDER_PAGES)?;
    let pdf_out = dir.join("from-pdf.cbz");
    let images = dir.join("pdfimages");
    let prefix = images.join("p");
    let s = alternate(&[
        Contender {
            name: "cbz-stream from-pdf".into(),
            argv: args(&[&tool, &"-q", &"from-pdf", &"-f", &big, &"-o", &pdf_out]),
            before: Box::new(|| {
                remove(&pdf_out)?;
                sync()
            }),
        },
        Contender {
            name: "pdfimages -all".into(),
            argv: args(&[&"pdfimages", &"-all", &big, &prefix]),
            before: Box::new(|| {
                remove(&images)?;
                std::fs::create_dir_all(&images)?;
                sync()
            }),
        },
    ])
    .map_err(|e| e.context("from-pdf"))?;
    let pdf_bytes = std::fs::metadata(&big)?.len();
    ok &= report("from-pdf (500 pages)", pdf_bytes, &s, 1.5, None);
    let same = Command::new(&python)
        .args(["-c", SAME_PAGES])
        .arg(&pdf_out)
        .arg(&images)
        .status()
        .context("comparing pages")?
        .success();
    ok &= same;
    remove(&images)?;

    let small_out = dir.join("from-pdf-50.cbz");
    let render = dir.join("pdftoppm");
    let render_prefix = render.join("p");
    let s = alternate(&[
        Contender {
            name: "cbz-stream from-pdf".into(),
            argv: args(&[&tool, &"-q", &"from-pdf", &"-f", &small, &"-o", &small_out]),
            before: Box::new(|| {
                remove(&small_out)?;
                sync()
            }),
        },
        Contender {
            name: "pdftoppm -r 300 -jpeg".into(),
            argv: args(&[&"pdftoppm", &"-r", &"300", &"-jpeg", &small, &render_prefix]),
            before: Box::new(|| {
                remove(&render)?;
                std::fs::create_dir_all(&render)?;
                sync()
            }),
        },
    ])
    .map_err(|e| e.context("from-pdf vs pdftoppm"))?;
    let speedup = s[1].wall.as_secs_f64() / s[0].wall.as_secs_f64().max(1e-9);
    ok &= report(
        "from-pdf (50 pages)",
        std::fs::metadata(&small)?.len(),
        &s,
        0.05,
        None,
    );
    println!("from-pdf is {speedup:.0}x faster than pdftoppm (target >= 20x)");
    remove(&render)?;
    Ok(ok)
}

/// Print one comparison and whether it met its targets: wall ratio to the peer at most
/// `wall_target`, and our peak RSS at most `rss_target` when there is one.
fn report(what: &str, bytes: u64, s: &[Sample], wall_target: f64, rss_target: Option<u64>) -> bool {
    println!(
        "\ncbz-stream {what}: {} of input, {ROUNDS} alternating rounds, median wall\n",
        human_bytes(bytes)
    );
    super::print_table(bytes >> 20, "MiB", s);
    let ratio = s[0].wall.as_secs_f64() / s[1].wall.as_secs_f64().max(1e-9);
    let wall_ok = ratio <= wall_target;
    let rss_ok = rss_target.is_none_or(|t| s[0].peak_rss <= t);
    println!(
        "{}: wall {ratio:.2}x {} (target <= {wall_target}x){}",
        if wall_ok && rss_ok { "PASS" } else { "FAIL" },
        s[1].name,
        match rss_target {
            Some(t) => format!(
                ", peak RSS {} (target <= {})",
                human_bytes(s[0].peak_rss),
                human_bytes(t)
            ),
            None => String::new(),
        }
    );
    wall_ok && rss_ok
}

/// Write every file system's dirty pages to disk, outside the timing: a run that ends
/// with an fsync (from-pdf, before renaming its archive into place) must not wait
/// behind the gigabytes the previous run (pdfimages, which does not sync) left in the
/// page cache.
fn sync() -> Result<()> {
    let st = Command::new("sync").status().context("running sync")?;
    anyhow::ensure!(st.success(), "sync failed ({st})");
    Ok(())
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    remove(to)?;
    std::fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    Ok(())
}

/// The first `n` entry names of an archive, in archive order.
fn first_entries(python: &Path, archive: &Path, n: usize) -> Result<Vec<String>> {
    let out = Command::new(python)
        .args([
            "-c",
            "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()[:int(sys.argv[2])]))",
        ])
        .arg(archive)
        .arg(n.to_string())
        .output()
        .context("listing the archive")?;
    anyhow::ensure!(out.status.success(), "listing {} failed", archive.display());
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect())
}

/// The distinct pages (made once) and a directory of page names linked to them until
/// `PACK_BYTES`.
fn make_pages(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let src = dir.join("distinct");
    let pages = dir.join("pages");
    let stamp = dir.join("pages.stamp");
    let want = format!("{VERSION} {PACK_BYTES} {DISTINCT}");
    let distinct: Vec<PathBuf> = (0..DISTINCT)
        .map(|i| src.join(format!("scan{i:02}.jpg")))
        .collect();
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) {
        return Ok((pages, distinct));
    }
    eprintln!("xtask: generating {DISTINCT} A4 pages and linking 2 GB of them");
    remove(&pages)?;
    std::fs::create_dir_all(&pages)?;
    let mut sizes = Vec::new();
    for (i, p) in distinct.iter().enumerate() {
        crate::samples::jpeg(p, 2480, 3508, 1000 + i as u32)?;
        sizes.push(std::fs::metadata(p)?.len());
    }
    let (mut total, mut n) = (0u64, 0usize);
    while total < PACK_BYTES {
        let k = n % distinct.len();
        // Names as scanners write them, which natural order must sort.
        std::fs::hard_link(&distinct[k], pages.join(format!("Page {}.jpg", n + 1)))?;
        total += sizes[k];
        n += 1;
    }
    std::fs::write(&stamp, want)?;
    Ok((pages, distinct))
}

/// A `pages`-page PDF of the distinct scans in turn (made once).
fn make_pdf(python: &Path, dir: &Path, distinct: &[PathBuf], pages: usize) -> Result<PathBuf> {
    let path = dir.join(format!("scanned-{pages}p.pdf"));
    let stamp = dir.join(format!("scanned-{pages}p.stamp"));
    let want = format!("{VERSION} {pages}");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(want.as_str()) && path.exists() {
        return Ok(path);
    }
    eprintln!("xtask: img2pdf {pages} pages");
    let st = Command::new(python)
        .args(["-c", MAKE_PDF])
        .arg(&path)
        .args((0..pages).map(|i| &distinct[i % distinct.len()]))
        .status()
        .context("running img2pdf")?;
    anyhow::ensure!(st.success(), "img2pdf failed ({st})");
    std::fs::write(&stamp, want)?;
    Ok(path)
}
