//! Budgets under a real memory limit: each tool runs inside a kernel limit equal to its
//! budget, on an input at least ten times larger than that budget, and the kernel kills
//! nothing (the cgroup's OOM-kill counter stays 0 and every run ends normally).
//!
//! The limit is, in order of preference, a child of this process's cgroup v2 with
//! `memory.max`, a child of its cgroup v1 memory controller with `memory.limit_in_bytes`
//! (and `memory.memsw.limit_in_bytes`, so swap does not hide an overrun), or `prlimit
//! --as` (address space, not RSS: a weaker last resort; no OOM counter, so a run killed
//! by it shows as a signal). `systemd-run --scope -p MemoryMax=` needs systemd as PID 1,
//! which containers and CI machines rarely have; the cgroup files are what it would
//! write. Each test prints which limit ran. Without `-m`, a tool's default budget follows
//! the limit: checked inside it.
//!
//! Inputs are cheap to make: a sparse uncompressed TIFF (no disk, no generator time) for
//! the raster tools, hard links of one JPEG for a CBZ, a LAS written point by point.
//! Larger inputs (LAZ clouds of tens of millions of points) are for benchmarks.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use testkit::{bin, ndjson, TempDir};

const MIB: u64 = 1 << 20;

/// Where a run's memory limit comes from.
#[derive(Debug)]
enum Limit {
    /// A cgroup v2 directory with `memory.max`.
    V2(PathBuf),
    /// A cgroup v1 memory directory with `memory.limit_in_bytes`.
    V1(PathBuf),
    /// `prlimit --as` of this many bytes.
    Prlimit(u64),
}

/// A fresh limit of `bytes`, named for the test; removed when dropped.
struct Limited {
    limit: Limit,
    bytes: u64,
}

/// This process's cgroup path for `controller` (v1), or the v2 path with `None`.
fn own_cgroup(controller: Option<&str>) -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        let hit = match controller {
            Some(c) => ctrls.split(',').any(|x| x == c),
            None => ctrls.is_empty(),
        };
        hit.then(|| path.to_string())
    })
}

impl Limited {
    fn new(name: &str, bytes: u64) -> Limited {
        let name = format!("membudget-{name}-{}", std::process::id());
        // cgroup v2: the unified hierarchy, with the memory controller enabled for our
        // children.
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let Some(own) = own_cgroup(None) else { break };
            let parent = Path::new(root).join(own.trim_start_matches('/'));
            let enabled = std::fs::read_to_string(parent.join("cgroup.subtree_control"))
                .is_ok_and(|s| s.split_whitespace().any(|c| c == "memory"));
            if !enabled {
                continue;
            }
            let dir = parent.join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                let ok = std::fs::write(dir.join("memory.max"), bytes.to_string()).is_ok();
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                if ok {
                    return Limited {
                        limit: Limit::V2(dir),
                        bytes,
                    };
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        // cgroup v1: a child of our memory cgroup.
        if let Some(own) = own_cgroup(Some("memory")) {
            let dir = Path::new("/sys/fs/cgroup/memory")
                .join(own.trim_start_matches('/'))
                .join(&name);
            if std::fs::create_dir(&dir).is_ok() {
                if std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string()).is_ok() {
                    // Memory plus swap no more than memory: swapping out is no escape.
                    let _ =
                        std::fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string());
                    return Limited {
                        limit: Limit::V1(dir),
                        bytes,
                    };
                }
                let _ = std::fs::remove_dir(&dir);
            }
        }
        Limited {
            limit: Limit::Prlimit(bytes),
            bytes,
        }
    }

    /// Which limit ran, for the test's output.
    fn describe(&self) -> String {
        match &self.limit {
            Limit::V2(d) => format!("cgroup v2 memory.max {} at {}", self.bytes, d.display()),
            Limit::V1(d) => format!(
                "cgroup v1 memory.limit_in_bytes {} at {}",
                self.bytes,
                d.display()
            ),
            Limit::Prlimit(b) => format!("prlimit --as={b} (no writable memory cgroup here)"),
        }
    }

    /// `program args` inside the limit, `stdin` on its standard input.
    fn run(&self, program: &Path, args: &[&str], stdin: &str) -> Output {
        let mut cmd = match &self.limit {
            Limit::V2(d) | Limit::V1(d) => {
                // The shell joins the cgroup, then becomes the program: every byte the
                // program touches is charged there.
                let mut c = Command::new("sh");
                c.arg("-c")
                    .arg(r#"echo $$ > "$0/cgroup.procs" && exec "$@""#)
                    .arg(d);
                c
            }
            Limit::Prlimit(b) => {
                let mut c = Command::new("prlimit");
                c.arg(format!("--as={b}")).arg("--");
                c
            }
        };
        cmd.arg(program).args(args);
        testkit::run_cmd(cmd, stdin)
    }

    /// OOM kills in the cgroup so far (`None` under prlimit, which has no counter).
    fn oom_kills(&self) -> Option<u64> {
        let (file, key) = match &self.limit {
            Limit::V2(d) => (d.join("memory.events"), "oom_kill"),
            Limit::V1(d) => (d.join("memory.oom_control"), "oom_kill"),
            Limit::Prlimit(_) => return None,
        };
        let text = std::fs::read_to_string(file).ok()?;
        text.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse().ok())?
        })
    }

    /// The cgroup's peak memory (page cache included), where the kernel keeps it.
    fn peak(&self) -> Option<u64> {
        let file = match &self.limit {
            Limit::V2(d) => d.join("memory.peak"),
            Limit::V1(d) => d.join("memory.max_usage_in_bytes"),
            Limit::Prlimit(_) => return None,
        };
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    /// Run, and check that the run ended normally and nothing was OOM-killed.
    fn run_checked(&self, what: &str, program: &Path, args: &[&str], stdin: &str) -> Vec<Value> {
        let started = std::time::Instant::now();
        let out = self.run(program, args, stdin);
        // The tool's own figure: its records' peak RSS (the cgroup's peak counts the page
        // cache the output fills, which the kernel reclaims at the limit).
        let peaks: Vec<u64> = ndjson(&out.stdout)
            .iter()
            .filter_map(|r| r.as_object())
            .flat_map(|o| o.values().filter_map(|v| v.get("peak_rss")?.as_u64()))
            .collect();
        eprintln!(
            "{what}: {}; exit {}, {:.1} s, records' peak RSS {:?} MiB, cgroup peak {:?}, OOM kills {:?}",
            self.describe(),
            out.status,
            started.elapsed().as_secs_f64(),
            peaks.iter().map(|p| p >> 20).collect::<Vec<_>>(),
            self.peak(),
            self.oom_kills()
        );
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(
            out.status.signal(),
            None,
            "{what} killed by a signal under {}: {}",
            self.describe(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(self.oom_kills().unwrap_or(0), 0, "{what}: OOM kills");
        testkit::check(&out, what);
        ndjson(&out.stdout)
    }
}

impl Drop for Limited {
    fn drop(&mut self) {
        if let Limit::V1(d) | Limit::V2(d) = &self.limit {
            // Empty once its processes are gone; a few tries while they exit.
            for _ in 0..20 {
                if std::fs::remove_dir(d).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }
}

/// A sparse RGB TIFF of at least `bytes` of pixels (no disk, reads as zeros).
fn big_tiff(dir: &TempDir, bytes: u64) -> PathBuf {
    let p = dir.path().join("big.tif");
    let side = ((bytes / 3) as f64).sqrt().ceil() as u32;
    testkit::sparse_tiff(&p, (side, side + 1), 3, 64, 1);
    assert!(std::fs::metadata(&p).unwrap().len() >= bytes);
    p
}

fn section<'a>(r: &'a Value, tool: &str) -> &'a Value {
    assert!(r.get("error").is_none(), "{r}");
    &r[tool]
}

/// mem-estimate and chunk-plan inside 32 MiB on a 320 MiB TIFF; chunk-plan without -m
/// plans within the limit. (The limit leaves a default budget, 70% of it, that some tool's
/// minimum fits: at 24 MiB none did once tile-enhance's writer took 0.5 MiB more, and
/// chunk-plan rightly exits 3.)
#[test]
fn mem_estimate_and_chunk_plan_inside_their_limit() {
    let dir = testkit::tempdir();
    let limit = 32 * MIB;
    let tif = big_tiff(&dir, 10 * limit);
    let path = tif.to_str().unwrap();
    let lim = Limited::new("estimate", limit);
    let records = lim.run_checked("mem-estimate", &bin("mem-estimate"), &["-q", path], "");
    let estimate = serde_json::to_string(&records[0]).unwrap();
    let lim = Limited::new("plan", limit);
    let records = lim.run_checked(
        "chunk-plan -m",
        &bin("chunk-plan"),
        &["-q", "-m", "32MiB"],
        &format!("{estimate}\n"),
    );
    assert_eq!(records[0]["plan"]["budget_bytes"], limit);
    // No -m: the default budget is below the cgroup limit.
    let records = lim.run_checked(
        "chunk-plan (default budget)",
        &bin("chunk-plan"),
        &["-q"],
        &format!("{estimate}\n"),
    );
    if !matches!(lim.limit, Limit::Prlimit(_)) {
        let b = records[0]["plan"]["budget_bytes"].as_u64().unwrap();
        assert!(
            b <= limit,
            "default budget {b} above the cgroup limit {limit}"
        );
    }
}

/// strip-convert inside 48 MiB on a 480 MiB TIFF (the JP2 is checked by opj_decompress's
/// header dump: the right size); without -m its budget follows the limit.
#[test]
fn strip_convert_inside_its_limit() {
    let dir = testkit::tempdir();
    let limit = 48 * MIB;
    let tif = big_tiff(&dir, 10 * limit);
    let out = dir.path().join("out");
    let (path, out_s) = (tif.to_str().unwrap(), out.to_str().unwrap());
    let lim = Limited::new("strip-convert", limit);
    let records = lim.run_checked(
        "strip-convert -m 48MiB",
        &bin("strip-convert"),
        &["-q", "-m", "48MiB", "-o", out_s, path],
        "",
    );
    let s = section(&records[0], "strip-convert");
    assert_eq!(s["status"], "ok", "{s}");
    if !matches!(lim.limit, Limit::Prlimit(_)) {
        assert!(s["peak_rss"].as_u64().unwrap() <= limit, "{s}");
    }
    // No -m: the default budget comes from the limit.
    let records = lim.run_checked(
        "strip-convert (default budget)",
        &bin("strip-convert"),
        &["-q", "-f", "-o", out_s, path],
        "",
    );
    let s = section(&records[0], "strip-convert");
    assert_eq!(s["status"], "ok", "{s}");
    if !matches!(lim.limit, Limit::Prlimit(_)) {
        assert!(s["budget_bytes"].as_u64().unwrap() <= limit, "{s}");
    }
    let jp2 = out.join("big.jp2");
    let dump = Command::new("opj_dump")
        .arg("-i")
        .arg(&jp2)
        .stderr(Stdio::null())
        .output();
    if let Ok(d) = dump {
        let text = String::from_utf8_lossy(&d.stdout);
        let side = ((10 * limit / 3) as f64).sqrt().ceil() as u32;
        assert!(
            text.contains(&format!("x1={side}, y1={}", side + 1)),
            "{text}"
        );
    }
}

/// A LAS 1.2 file (point format 0) of `n` points on a jittered 0.25 m grid, written here.
fn las_grid(path: &Path, n: u32) {
    let side = (f64::from(n)).sqrt().ceil() as u32;
    let mut head = vec![0u8; 227];
    head[0..4].copy_from_slice(b"LASF");
    head[24] = 1;
    head[25] = 2;
    head[94..96].copy_from_slice(&227u16.to_le_bytes());
    head[96..100].copy_from_slice(&227u32.to_le_bytes());
    head[104] = 0;
    head[105..107].copy_from_slice(&20u16.to_le_bytes());
    head[107..111].copy_from_slice(&n.to_le_bytes());
    head[111..115].copy_from_slice(&n.to_le_bytes());
    let scale = 0.01f64;
    for i in 0..3 {
        head[131 + 8 * i..139 + 8 * i].copy_from_slice(&scale.to_le_bytes());
    }
    let extent = f64::from(side) * 0.25;
    // max x, min x, max y, min y, max z, min z
    for (i, v) in [extent, 0.0, extent, 0.0, 2.0, 0.0].iter().enumerate() {
        head[179 + 8 * i..187 + 8 * i].copy_from_slice(&v.to_le_bytes());
    }
    let mut rng = testkit::Rng::new(7);
    let mut data = head;
    data.reserve(n as usize * 20);
    for k in 0..n {
        let (gx, gy) = (k % side, k / side);
        let x = (f64::from(gx) * 25.0 + rng.below(10) as f64) as i32;
        let y = (f64::from(gy) * 25.0 + rng.below(10) as f64) as i32;
        let z = (100.0 * ((f64::from(gx) / 40.0).sin() + 1.0)) as i32;
        let mut rec = [0u8; 20];
        rec[0..4].copy_from_slice(&x.to_le_bytes());
        rec[4..8].copy_from_slice(&y.to_le_bytes());
        rec[8..12].copy_from_slice(&z.to_le_bytes());
        rec[14] = 0x09; // return 1 of 1
        data.extend_from_slice(&rec);
    }
    std::fs::write(path, data).unwrap();
}

/// laz-enrich inside 40 MiB on a cloud whose whole-cloud processing would need at least
/// ten times that (its estimate's `whole_bytes`); the output has every point (laspy).
#[test]
fn laz_enrich_inside_its_limit() {
    let dir = testkit::tempdir();
    let limit = 40 * MIB;
    let las = dir.path().join("grid.las");
    las_grid(&las, 3_000_000);
    let path = las.to_str().unwrap();
    let est = ndjson(&testkit::run_stdin(&bin("mem-estimate"), &["-q", path], "").stdout);
    let whole = est[0]["estimate"]["laz-enrich"]["whole_bytes"]
        .as_u64()
        .unwrap();
    assert!(
        whole >= 10 * limit,
        "whole-cloud estimate {whole} not 10x {limit}"
    );
    let out = dir.path().join("out");
    let lim = Limited::new("laz-enrich", limit);
    let records = lim.run_checked(
        "laz-enrich -m 40MiB",
        &bin("laz-enrich"),
        &[
            "-q",
            "-m",
            "40MiB",
            "-F",
            "planarity,linearity",
            "-R",
            "0.5",
            "-o",
            out.to_str().unwrap(),
            path,
        ],
        "",
    );
    let s = section(&records[0], "laz-enrich");
    assert_eq!(s["status"], "ok", "{s}");
    if let Some(py) = testkit::python(&["laspy"]) {
        let n = testkit::run_python(
            &py,
            "import sys, laspy; print(laspy.read(sys.argv[1]).header.point_count)",
            &[out.join("grid.enriched.laz").to_str().unwrap()],
        );
        assert_eq!(n.trim(), "3000000");
    }
}

/// cbz-stream (no budget option: fixed buffers) inside 32 MiB: pack 320 MiB of pages,
/// list and unpack the archive; `unzip -t` checks it.
#[test]
fn cbz_stream_inside_its_limit() {
    let dir = testkit::tempdir();
    let limit = 32 * MIB;
    let pages = dir.path().join("book");
    std::fs::create_dir(&pages).unwrap();
    let jpg = testkit::shared_data().join("images/hubble_deep_field.jpg");
    let one = std::fs::metadata(&jpg).unwrap().len();
    let n = (10 * limit).div_ceil(one);
    std::fs::copy(&jpg, pages.join("page-0.jpg")).unwrap();
    for i in 1..n {
        std::fs::hard_link(
            pages.join("page-0.jpg"),
            pages.join(format!("page-{i}.jpg")),
        )
        .unwrap();
    }
    let cbz = dir.path().join("book.cbz");
    let lim = Limited::new("cbz", limit);
    let cbz_s = cbz.to_str().unwrap();
    lim.run_checked(
        "cbz-stream pack",
        &bin("cbz-stream"),
        &["-q", "pack", "-o", cbz_s, pages.to_str().unwrap()],
        "",
    );
    assert!(std::fs::metadata(&cbz).unwrap().len() >= 10 * limit);
    let listed = lim.run_checked(
        "cbz-stream list",
        &bin("cbz-stream"),
        &["-q", "list", cbz_s],
        "",
    );
    assert!(listed.len() as u64 >= n, "{} entries", listed.len());
    let unpacked = dir.path().join("unpacked");
    lim.run_checked(
        "cbz-stream unpack",
        &bin("cbz-stream"),
        &["-q", "unpack", "-o", unpacked.to_str().unwrap(), cbz_s],
        "",
    );
    let t = Command::new("unzip").args(["-tq", cbz_s]).output();
    if let Ok(t) = t {
        testkit::check(&t, "unzip -t");
    }
}
