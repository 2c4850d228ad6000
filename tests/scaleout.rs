//! Scale-out with the engines users already have, each run for real on a small tree
//! (four TIFFs, two LAZ clouds): `make -j` with examples/Makefile, the xargs pipeline,
//! GNU parallel over `chunk-plan --shards` with local job slots and over SSH to an sshd
//! this test starts on loopback, and a one-node Slurm cluster (munge, slurmctld, slurmd
//! started here) running examples/slurm.sbatch as a job array with `--mem` from the plan.
//! Daemons that cannot start here (no sshd, no Slurm, not root) make their test say so and
//! skip, unless `MEMBUDGET_REQUIRE_VALIDATORS=1` (`cargo xtask test`, which installs them).
//! Outputs are checked with jpylyzer (JP2) and laspy (LAZ), not with our readers.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use testkit::{bin, ndjson, shared_data, TempDir};

/// The tools' directory (each built once).
fn tools() -> PathBuf {
    for t in ["mem-estimate", "chunk-plan", "strip-convert", "laz-enrich"] {
        bin(t);
    }
    bin("mem-estimate").parent().unwrap().to_path_buf()
}

/// A small tree: `in/scans/*.tif`, `in/laz/*.laz`, and an `out` beside it.
struct Tree {
    dir: TempDir,
}

const TIFFS: [&str; 4] = [
    "kodim02-lzw.tif",
    "kodim07-lzw.tif",
    "tiled-rgb-u8.tif",
    "planar-rgb-u8.tif",
];
const CLOUDS: [&str; 2] = ["autzen.laz", "32-1-472-150-76.laz"];

impl Tree {
    fn new() -> Tree {
        let dir = testkit::tempdir();
        let scans = dir.path().join("in/scans");
        let laz = dir.path().join("in/laz");
        std::fs::create_dir_all(&scans).unwrap();
        std::fs::create_dir_all(&laz).unwrap();
        for t in TIFFS {
            std::fs::copy(shared_data().join("tiff").join(t), scans.join(t)).unwrap();
        }
        for c in CLOUDS {
            std::fs::copy(shared_data().join("laz").join(c), laz.join(c)).unwrap();
        }
        Tree { dir }
    }
    fn input(&self) -> PathBuf {
        self.dir.path().join("in")
    }
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    /// `bash -c script` with the tools on PATH and IN, OUT, BIN, ROOT set.
    fn sh(&self, script: &str) -> Output {
        let bin = tools();
        Command::new("bash")
            .args(["-c", script])
            .current_dir(self.dir.path())
            .env("PATH", path_with(&bin))
            .env("BIN", &bin)
            .env("IN", self.input())
            .env("OUT", self.out())
            .env("ROOT", testkit::workspace_root())
            .output()
            .expect("bash")
    }
    /// The manifest of the tree, planned with `budget` in `shards` shards.
    fn manifest(&self, shards: u32, budget: &str) -> PathBuf {
        let m = self.dir.path().join("manifest.ndjson");
        let out = self.sh(&format!(
            r#"find "$IN" -type f | LC_ALL=C sort | mem-estimate -q | chunk-plan -q --shards {shards} -m {budget} > manifest.ndjson"#
        ));
        testkit::check(&out, "mem-estimate | chunk-plan --shards");
        let records = read_ndjson(&m);
        assert_eq!(records.len(), TIFFS.len() + CLOUDS.len());
        for r in &records {
            let s = r["plan"]["shard"].as_u64().unwrap_or_else(|| panic!("{r}"));
            assert!(s < u64::from(shards), "{r}");
        }
        m
    }
}

fn path_with(dir: &Path) -> String {
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn read_ndjson(p: &Path) -> Vec<Value> {
    ndjson(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// Files under `dir` whose name ends with `suffix`, sorted.
fn found(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let out = Command::new("find")
        .arg(dir)
        .args(["-type", "f", "-name", &format!("*{suffix}")])
        .output()
        .unwrap();
    let mut v: Vec<PathBuf> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(PathBuf::from)
        .collect();
    v.sort();
    v
}

/// Every TIFF became a valid JP2 (jpylyzer) and every cloud an enriched LAZ with as many
/// points as its source and the feature dimensions (laspy).
fn check_outputs(out: &Path) {
    let jp2s = found(out, ".jp2");
    let clouds = found(out, ".enriched.laz");
    assert_eq!(jp2s.len(), TIFFS.len(), "{jp2s:?}");
    assert_eq!(clouds.len(), CLOUDS.len(), "{clouds:?}");
    // No temporary left behind.
    assert!(found(out, ".part").is_empty());
    let Some(py) = testkit::python(&["jpylyzer", "laspy", "lazrs"]) else {
        return;
    };
    let valid = testkit::python_records(
        &py,
        r#"
import sys, json
from jpylyzer import jpylyzer
for p in sys.argv[1:]:
    r = jpylyzer.checkOneFile(p)
    print(json.dumps({"valid": r.findtext("isValid") == "True"}))
"#,
        &jp2s,
    );
    for (p, v) in jp2s.iter().zip(&valid) {
        assert_eq!(v["valid"], true, "{}", p.display());
    }
    let counts = testkit::python_records(
        &py,
        r#"
import sys, json, laspy
for p in sys.argv[1:]:
    las = laspy.read(p)
    print(json.dumps({"points": int(las.header.point_count), "planarity": "planarity" in las.point_format.dimension_names}))
"#,
        &clouds,
    );
    let mut got: Vec<u64> = counts
        .iter()
        .map(|c| {
            assert_eq!(c["planarity"], true, "{c}");
            c["points"].as_u64().unwrap()
        })
        .collect();
    got.sort();
    // autzen: 106 points, 32-1-472-150-76: 5,658 (the data README).
    assert_eq!(got, [106, 5658]);
}

/// Records of a run: each ok (or skipped), none an error.
fn all_ok(records: &[Value], tool: &str) {
    for r in records {
        assert!(r.get("error").is_none(), "{r}");
        let st = r[tool]["status"].as_str().unwrap_or_default();
        assert!(st == "ok" || st == "skipped", "{r}");
    }
}

#[test]
fn make_j_plans_converts_and_enriches() {
    let t = Tree::new();
    let out = t.sh(
        r#"make -s -f "$ROOT/examples/Makefile" BIN="$BIN" IN="$IN" OUT="$OUT" BUDGET=128MiB -j2 -k all convert enrich"#,
    );
    testkit::check(&out, "make -j2");
    assert_eq!(found(&t.out(), ".plan.json").len(), TIFFS.len());
    for r in found(&t.out(), ".jp2.json") {
        all_ok(&read_ndjson(&r), "strip-convert");
    }
    check_outputs(&t.out());
}

#[test]
fn xargs_pipeline_plans_every_file() {
    let t = Tree::new();
    let out = t.sh(r#""$ROOT/examples/xargs.sh" "$IN" 128MiB"#);
    testkit::check(&out, "examples/xargs.sh");
    let records = ndjson(&out.stdout);
    assert_eq!(records.len(), TIFFS.len() + CLOUDS.len());
    for r in &records {
        assert_eq!(r["plan"]["budget_bytes"], 128 << 20, "{r}");
    }
}

/// GNU parallel, one job per shard on two local slots, each started when the plan's
/// budget is free (--memfree) and kept to it.
#[test]
fn parallel_runs_the_shards_on_local_slots() {
    let t = Tree::new();
    let m = t.manifest(3, "128MiB");
    let out = t.sh(&format!(
        r#"BASE="$IN" "$ROOT/examples/shards.sh" {} "$OUT" -j 2"#,
        m.display()
    ));
    testkit::check(&out, "examples/shards.sh -j 2");
    check_shard_records(&t.out(), 3, 128 << 20);
    check_outputs(&t.out());
}

/// Each shard's records: ok, within the plan's budget.
fn check_shard_records(out: &Path, shards: u32, budget: u64) {
    let mut converted = 0;
    for s in 0..shards {
        for (file, tool) in [("converted", "strip-convert"), ("enriched", "laz-enrich")] {
            let records = read_ndjson(&out.join(format!("{file}-{s}.ndjson")));
            all_ok(&records, tool);
            for r in &records {
                let peak = r[tool]["peak_rss"].as_u64().unwrap_or(0);
                assert!(peak <= budget, "{r}");
            }
            if tool == "strip-convert" {
                converted += records.len();
            }
        }
    }
    assert_eq!(converted, TIFFS.len());
}

/// An sshd on a free loopback port, accepting one key made here; killed when dropped.
struct Sshd {
    child: Child,
    dir: TempDir,
    port: u16,
}

impl Sshd {
    fn start() -> Result<Sshd, String> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            return Err("no /usr/sbin/sshd (Debian openssh-server)".into());
        }
        let dir = testkit::tempdir();
        let d = dir.path();
        for key in ["host", "user"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(key))
                .status()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !st.success() {
                return Err(format!("ssh-keygen: {st}"));
            }
        }
        std::fs::copy(d.join("user.pub"), d.join("authorized_keys")).unwrap();
        // Privilege separation wants this directory; creating it needs root.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {host}\nAuthorizedKeysFile {keys}\n\
                 UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPidFile none\n",
                host = d.join("host").display(),
                keys = d.join("authorized_keys").display()
            ),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stderr(std::fs::File::create(d.join("sshd.log")).unwrap())
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
        let mut s = Sshd { child, dir, port };
        // Ready when a login runs a command.
        for _ in 0..50 {
            if s.ssh_command()
                .arg("true")
                .status()
                .is_ok_and(|st| st.success())
            {
                return Ok(s);
            }
            if let Ok(Some(st)) = s.child.try_wait() {
                let log =
                    std::fs::read_to_string(s.dir.path().join("sshd.log")).unwrap_or_default();
                return Err(format!("sshd exited ({st}): {log}"));
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        Err("sshd did not accept a login in 10 s".into())
    }

    /// The ssh command line that logs in (an sshlogin for GNU parallel).
    fn login(&self) -> String {
        let user = Command::new("id").arg("-un").output().unwrap();
        format!(
            "ssh -p {} -i {} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
             -o BatchMode=yes -o LogLevel=ERROR {}@127.0.0.1",
            self.port,
            self.dir.path().join("user").display(),
            String::from_utf8_lossy(&user.stdout).trim()
        )
    }

    fn ssh_command(&self) -> Command {
        let login = self.login();
        let mut words = login.split_whitespace();
        let mut c = Command::new(words.next().unwrap());
        c.args(words).stdin(Stdio::null()).stderr(Stdio::null());
        c
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Skip with the reason, or fail when the suite must run everything.
fn skip(what: &str, why: &str) {
    if testkit::validators_required() {
        panic!("{what}: {why}");
    }
    eprintln!("skipped: {what}: {why}");
}

/// GNU parallel over SSH (--sshloginfile) to an sshd on loopback: two slots on the
/// "remote" node, PATH and the job function passed along, --memfree checked there.
#[test]
fn parallel_runs_the_shards_over_ssh() {
    let sshd = match Sshd::start() {
        Ok(s) => s,
        Err(why) => return skip("parallel over SSH", &why),
    };
    let t = Tree::new();
    let m = t.manifest(2, "128MiB");
    let nodes = t.dir.path().join("nodes");
    std::fs::write(&nodes, format!("2/{}\n", sshd.login())).unwrap();
    let out = t.sh(&format!(
        r#"BASE="$IN" "$ROOT/examples/shards.sh" {} "$OUT" --sshloginfile {}"#,
        m.display(),
        nodes.display()
    ));
    testkit::check(&out, "examples/shards.sh --sshloginfile");
    check_shard_records(&t.out(), 2, 128 << 20);
    check_outputs(&t.out());
}

/// A one-node Slurm cluster in a temp directory: munged, slurmctld and slurmd with their
/// own config, sockets, ports and state; task/cgroup enforces each job's --mem when the
/// cgroup v1 memory controller is there. Stopped when dropped.
struct Slurm {
    dir: TempDir,
    conf: PathBuf,
    daemons: Vec<Child>,
    /// Whether jobs run in a memory cgroup of their --mem.
    cgroup: bool,
    /// The node's name (`hostname -s`).
    host: String,
}

impl Slurm {
    fn start() -> Result<Slurm, String> {
        for d in [
            "/usr/sbin/munged",
            "/usr/sbin/slurmctld",
            "/usr/sbin/slurmd",
        ] {
            if !Path::new(d).exists() {
                return Err(format!("no {d} (Debian slurm-wlm and munge)"));
            }
        }
        let uid = Command::new("id").arg("-u").output().unwrap();
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return Err("slurmd must run as root".into());
        }
        let dir = testkit::tempdir();
        let d = dir.path().to_path_buf();
        for sub in ["munge", "state", "spool", "log"] {
            std::fs::create_dir_all(d.join(sub)).unwrap();
        }
        let key = d.join("munge/munge.key");
        let ok = Command::new("mungekey")
            .args(["--create", "--keyfile"])
            .arg(&key)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Err("mungekey --create failed".into());
        }
        let socket = d.join("munge/socket");
        let munged = Command::new("/usr/sbin/munged")
            .arg("--foreground")
            .arg(format!("--key-file={}", key.display()))
            .arg(format!("--socket={}", socket.display()))
            .arg(format!("--pid-file={}", d.join("munge/pid").display()))
            .arg(format!("--log-file={}", d.join("munge/log").display()))
            .arg(format!("--seed-file={}", d.join("munge/seed").display()))
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("munged: {e}"))?;
        let host = Command::new("hostname").arg("-s").output().unwrap();
        let host = String::from_utf8_lossy(&host.stdout).trim().to_string();
        let mut s = Slurm {
            conf: d.join("slurm.conf"),
            dir,
            daemons: vec![munged],
            cgroup: Path::new("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists(),
            host: host.clone(),
        };
        let (proctrack, task) = if s.cgroup {
            std::fs::write(
                d.join("cgroup.conf"),
                "CgroupPlugin=cgroup/v1\nCgroupMountpoint=/sys/fs/cgroup\nConstrainRAMSpace=yes\n\
                 ConstrainSwapSpace=no\nConstrainCores=no\n",
            )
            .unwrap();
            ("proctrack/cgroup", "task/cgroup")
        } else {
            ("proctrack/linuxproc", "task/none")
        };
        std::fs::write(
            &s.conf,
            format!(
                "ClusterName=membudget\nSlurmctldHost={host}\nSlurmctldPort={ctld}\n\
                 SlurmdPort={slurmd}\nSlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n\
                 AuthInfo=socket={socket}\nCredType=cred/munge\nStateSaveLocation={d}/state\n\
                 SlurmdSpoolDir={d}/spool\nSlurmctldPidFile={d}/ctld.pid\n\
                 SlurmdPidFile={d}/slurmd.pid\nSlurmctldLogFile={d}/log/ctld.log\n\
                 SlurmdLogFile={d}/log/slurmd.log\nProctrackType={proctrack}\nTaskPlugin={task}\n\
                 SelectType=select/cons_tres\nSelectTypeParameters=CR_Core_Memory\n\
                 MpiDefault=none\nReturnToService=2\nJobAcctGatherType=jobacct_gather/none\n\
                 NodeName={host} CPUs=2 RealMemory=2048 State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                ctld = free_port(),
                slurmd = free_port(),
                socket = socket.display(),
                d = d.display(),
            ),
        )
        .unwrap();
        for (daemon, args) in [
            ("/usr/sbin/slurmctld", &["-D", "-c", "-i"][..]),
            ("/usr/sbin/slurmd", &["-D"][..]),
        ] {
            let child = Command::new(daemon)
                .args(args)
                .env("SLURM_CONF", &s.conf)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(|e| format!("{daemon}: {e}"))?;
            s.daemons.push(child);
        }
        // Ready when the node is idle.
        for _ in 0..60 {
            let out = s.command("sinfo").args(["-h", "-o", "%t"]).output();
            if out.is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "idle") {
                return Ok(s);
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let log = |f: &str| std::fs::read_to_string(d.join("log").join(f)).unwrap_or_default();
        Err(format!(
            "the node did not come up in 15 s:\n{}\n{}",
            log("ctld.log"),
            log("slurmd.log")
        ))
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("SLURM_CONF", &self.conf);
        c
    }
}

impl Drop for Slurm {
    fn drop(&mut self) {
        let _ = self.command("scontrol").arg("shutdown").status();
        for d in self.daemons.iter_mut().rev() {
            let _ = d.kill();
            let _ = d.wait();
        }
        // slurmd's cgroups (slurm_<host>/uid_*/job_*), empty once the jobs are gone.
        if self.cgroup {
            for c in ["memory", "freezer", "cpuset", "devices"] {
                let _ = Command::new("find")
                    .arg(format!("/sys/fs/cgroup/{c}/slurm_{}", self.host))
                    .args(["-depth", "-type", "d", "-exec", "rmdir", "{}", "+"])
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }
}

/// examples/slurm.sbatch as a job array, one task per shard, --mem from the plan: inside
/// each job the tools take their default budget from the job's memory cgroup.
#[test]
fn slurm_array_job_runs_the_shards() {
    let slurm = match Slurm::start() {
        Ok(s) => s,
        Err(why) => return skip("Slurm", &why),
    };
    let t = Tree::new();
    let m = t.manifest(2, "192MiB");
    // --mem: the plan's budget, in MiB.
    let budget = read_ndjson(&m)
        .iter()
        .filter_map(|r| r["plan"]["budget_bytes"].as_u64())
        .max()
        .unwrap();
    let mem = format!("--mem={}M", budget >> 20);
    let out = slurm
        .command("sbatch")
        .args(["--wait", "--array=0-1", &mem, "--cpus-per-task=1"])
        .arg(format!("--chdir={}", t.dir.path().display()))
        .arg(format!("--output={}/slurm-%a.out", t.dir.path().display()))
        .arg(testkit::workspace_root().join("examples/slurm.sbatch"))
        .arg(&m)
        .env("PATH", path_with(&tools()))
        .env("BIN", tools())
        .env("OUT", t.out())
        .output()
        .expect("sbatch");
    let logs: String = (0..2)
        .map(|i| {
            std::fs::read_to_string(t.dir.path().join(format!("slurm-{i}.out"))).unwrap_or_default()
        })
        .collect();
    assert!(
        out.status.success(),
        "sbatch: {}\n{}\n{logs}",
        String::from_utf8_lossy(&out.stderr),
        slurm.dir.path().display()
    );
    let mut converted = 0;
    for s in 0..2 {
        for (file, tool) in [("converted", "strip-convert"), ("enriched", "laz-enrich")] {
            let records = read_ndjson(&t.dir.path().join(format!("{file}-{s}.ndjson")));
            all_ok(&records, tool);
            for r in &records {
                // The job's memory is the tools' limit: their default budget follows it.
                if slurm.cgroup && tool == "strip-convert" {
                    let b = r[tool]["budget_bytes"].as_u64().unwrap_or(u64::MAX);
                    assert!(b <= budget, "{r}");
                }
                assert!(r[tool]["peak_rss"].as_u64().unwrap_or(0) <= budget, "{r}");
            }
            if tool == "strip-convert" {
                converted += records.len();
            }
        }
    }
    assert_eq!(converted, TIFFS.len(), "{logs}");
    check_outputs(&t.out());
}
