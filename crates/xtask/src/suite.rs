//! `cargo xtask test`: install the external validators the tests compare against (Debian
//! packages, and a Python venv in `target/venv`), then run `cargo test --workspace` with
//! `MEMBUDGET_REQUIRE_VALIDATORS=1`, so a missing validator fails instead of skipping;
//! then every fuzz target of `fuzz/` for a few seconds each.
//!
//! To add a validator: a Debian package goes in [`DEBIAN_PACKAGES`], a Python package in
//! `crates/xtask/requirements.txt`.

use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Debian packages the tests use, each with a command that shows it is installed (so a
/// machine that has the program from elsewhere is not asked to install it again).
pub const DEBIAN_PACKAGES: &[(&str, &str)] = &[
    ("libvips-tools", "vips"),
    ("libopenjp2-tools", "opj_compress"),
    ("grokj2k-tools", "grk_compress"),
    ("poppler-utils", "pdfimages"),
    ("zip", "zip"),
    ("unzip", "unzip"),
    ("parallel", "parallel"),
    ("jq", "jq"),
    ("file", "file"),
    ("make", "make"),
    ("p7zip-full", "7z"),
    ("libarchive-tools", "bsdtar"),
    // crates/raster/tests/jpeg_dc.rs: JPEGs of sampling factors and codings Pillow does
    // not write.
    ("libjpeg-turbo-progs", "cjpeg"),
    // tests/scaleout.rs: GNU parallel over SSH to a loopback sshd, a one-node Slurm.
    ("openssh-server", "/usr/sbin/sshd"),
    ("munge", "munged"),
    ("slurm-wlm", "slurmctld"),
];

/// Python requirements, one per line (the single list; see the file's header).
pub const REQUIREMENTS: &str = include_str!("../requirements.txt");

/// Install, then run the suite; exits with cargo's status.
pub fn run(root: &Path, args: &[String]) -> Result<ExitCode> {
    install_debian_packages(DEBIAN_PACKAGES)?;
    let python = ensure_venv(root)?;
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .args(args)
        .env("MEMBUDGET_REQUIRE_VALIDATORS", "1")
        .env("MEMBUDGET_PYTHON", &python);
    eprintln!(
        "xtask: MEMBUDGET_REQUIRE_VALIDATORS=1 MEMBUDGET_PYTHON={} cargo test --workspace --no-fail-fast {}",
        python.display(),
        args.join(" ")
    );
    let status = cmd.status().context("running cargo test")?;
    let fuzz = fuzz_briefly(root)?;
    Ok(match status.code() {
        Some(0) if fuzz => ExitCode::SUCCESS,
        Some(0) => ExitCode::FAILURE,
        Some(c) => ExitCode::from(u8::try_from(c).unwrap_or(1)),
        None => ExitCode::FAILURE,
    })
}

/// Seconds each fuzz target runs in CI (13 targets: under three minutes with the build).
const FUZZ_SECONDS: &str = "8";

/// Every fuzz target of fuzz/ (its regressions, its seeds, then mutants for
/// [`FUZZ_SECONDS`]) through the stable runner, which needs no nightly toolchain; shares
/// the workspace's target directory so the libraries are not built twice. True when
/// nothing was found.
fn fuzz_briefly(root: &Path) -> Result<bool> {
    let target = crate::target_dir(root);
    let mut cmd = Command::new(crate::cargo());
    cmd.current_dir(root.join("fuzz"))
        .args([
            "run",
            "--quiet",
            "--no-default-features",
            "--bin",
            "stable",
            "--",
            "--seconds",
            FUZZ_SECONDS,
        ])
        .env("CARGO_TARGET_DIR", &target);
    eprintln!("xtask: (cd fuzz && cargo run --no-default-features --bin stable -- --seconds {FUZZ_SECONDS})");
    let st = cmd.status().context("running the fuzz targets")?;
    Ok(st.success())
}

pub(crate) fn have_command(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd} >/dev/null 2>&1")])
        .status()
        .is_ok_and(|s| s.success())
}

fn dpkg_installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b"install ok installed"))
}

/// `apt-get install` (after one `apt-get update`) the packages that are missing; as root
/// directly, else through sudo.
pub fn install_debian_packages(packages: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .filter(|(pkg, cmd)| !have_command(cmd) && !dpkg_installed(pkg))
        .map(|(pkg, _)| *pkg)
        .collect();
    apt_install(&missing)
}

/// `apt-get update` then `apt-get install -y` of `missing` (nothing if empty).
fn apt_install(missing: &[&str]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    if !have_command("apt-get") {
        bail!(
            "missing {} and no apt-get here: install them by hand",
            missing.join(" ")
        );
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| -> Result<()> {
        let mut cmd = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        eprintln!(
            "xtask: {}apt-get {}",
            if root { "" } else { "sudo " },
            args.join(" ")
        );
        let st = cmd.status().context("running apt-get")?;
        anyhow::ensure!(st.success(), "apt-get {} failed ({st})", args.join(" "));
        Ok(())
    };
    apt(&["update", "-q"])?;
    let mut args = vec!["install", "-y", "-q", "--no-install-recommends"];
    args.extend(missing);
    apt(&args)
}

/// Create `target/venv` if needed and install [`REQUIREMENTS`] into it, unless a stamp
/// file records that exactly these requirements were installed already. Returns the
/// venv's python.
pub fn ensure_venv(root: &Path) -> Result<PathBuf> {
    let venv = root.join("target/venv");
    let python = venv.join("bin/python");
    if !python.exists() {
        eprintln!("xtask: python3 -m venv target/venv");
        let ok = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Debian's python3 keeps venv in a separate package.
            apt_install(&["python3-venv"])?;
            let st = Command::new("python3")
                .args(["-m", "venv", "--clear"])
                .arg(&venv)
                .status()
                .context("running python3 -m venv")?;
            anyhow::ensure!(st.success(), "python3 -m venv failed ({st})");
        }
    }
    let stamp = venv.join("membudget-requirements.txt");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(REQUIREMENTS) {
        return Ok(python);
    }
    let reqs = venv.join("requirements.in");
    std::fs::write(&reqs, REQUIREMENTS)?;
    eprintln!("xtask: pip install -r crates/xtask/requirements.txt (into target/venv)");
    let st = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&reqs)
        .status()
        .context("running pip")?;
    anyhow::ensure!(st.success(), "pip install failed ({st})");
    std::fs::write(&stamp, REQUIREMENTS)?;
    Ok(python)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requirement_list_is_clean() {
        let reqs: Vec<&str> = REQUIREMENTS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert!(reqs.contains(&"jsonschema") && reqs.contains(&"tifffile"));
        let mut sorted = reqs.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), reqs.len(), "duplicate requirement");
        for (pkg, cmd) in DEBIAN_PACKAGES {
            assert!(!pkg.is_empty() && !cmd.contains(' '));
        }
    }
}
