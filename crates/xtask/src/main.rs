//! `cargo xtask`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `docs [--check]`: man pages and shell completions generated from the tools' clap
//!   commands (the registry in [`tools`]), committed and checked in CI.
//! - `test [ARGS]`: install the external validators and run the whole suite with them
//!   required.
//! - `demo`: make sample inputs and run the real pipeline through real pipes, with the
//!   peak RSS of every stage.
//! - `bench <tool>`: a benchmark against a peer program, one module per tool in [`bench`].
//! - `fuzz [tool]`: mutate the corpus, run the tools under limits, classify every run
//!   (see [`fuzz`]).
//! - `reliability`: SIGKILLs, full disks, concurrent runs and mutants against every
//!   processing tool, with a table of figures (see [`reliability`]).

mod bench;
mod demo;
mod docs;
mod fuzz;
mod measure;
mod reliability;
mod samples;
mod suite;
mod tools;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Project automation for the membudget workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Write man/<tool>.1 and completions/{bash,zsh,fish}/ for every tool
    Docs {
        /// Write nothing; fail if a committed file differs, is missing or is stale
        #[arg(long)]
        check: bool,
    },
    /// Install the external validators (apt, a venv in target/venv) and run
    /// `cargo test --workspace` with them required; extra arguments go to cargo test
    Test {
        /// Arguments passed through to `cargo test --workspace`
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Generate sample inputs in target/demo/in and run the real pipeline on them
    Demo,
    /// Benchmark a tool against a peer program and print a table
    Bench {
        /// The tool to benchmark
        #[arg(value_parser = clap::builder::PossibleValuesParser::new(bench::names()))]
        tool: String,
    },
    /// Mutate the corpus, run each tool on the mutants under a time and address-space
    /// limit and classify every run; exits 1 when any panicked, aborted, hung, left a
    /// partial output or changed its source
    Fuzz(fuzz::Args),
    /// Kill every processing tool with SIGKILL at random moments, fill its disk, run it
    /// twice at once and on mutated inputs; print per tool the inputs tried, crashes,
    /// hangs, OOM kills, partial outputs, leftover temporaries and sources modified;
    /// exits 1 unless all are zero
    Reliability(reliability::Args),
    /// Internal: run a command in this small fresh process and write its peak RSS and
    /// wall time to REPORT (see measure.rs for why)
    #[command(hide = true)]
    MeasureChild {
        /// Where to write the figures
        report: PathBuf,
        /// The command and its arguments
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = workspace_root();
    let result = match cli.cmd {
        Cmd::Docs { check } => docs::run(&root, check).map(|()| ExitCode::SUCCESS),
        Cmd::Test { args } => suite::run(&root, &args),
        Cmd::Demo => demo::run(&root).map(|()| ExitCode::SUCCESS),
        Cmd::Bench { tool } => bench::run(&root, &tool),
        Cmd::Fuzz(args) => fuzz::run(&root, &args),
        Cmd::Reliability(args) => reliability::run(&root, &args),
        Cmd::MeasureChild { report, argv } => measure::measure_child(&report, &argv),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: two levels above this crate.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.ancestors()
        .nth(2)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}

/// The cargo that runs us (`$CARGO`), or the one on PATH.
fn cargo() -> std::ffi::OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Build the release binaries of `packages` and return the directory holding them.
fn build_release(root: &Path, packages: &[&str]) -> Result<PathBuf> {
    build_profile(root, "release", packages)
}

/// Build `packages` (named as their binaries) in cargo profile `profile` and return the
/// directory holding the binaries.
fn build_profile(root: &Path, profile: &str, packages: &[&str]) -> Result<PathBuf> {
    let mut cmd = std::process::Command::new(cargo());
    cmd.current_dir(root)
        .args(["build", "--quiet", "--profile", profile]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    eprintln!(
        "xtask: cargo build --profile {profile} -p {}",
        packages.join(" -p ")
    );
    let st = cmd.status().context("running cargo build")?;
    anyhow::ensure!(
        st.success(),
        "cargo build --profile {profile} failed ({st})"
    );
    // Cargo's dev profile builds into target/debug, every other into target/<name>.
    Ok(target_dir(root).join(if profile == "dev" { "debug" } else { profile }))
}

/// The target directory: `$CARGO_TARGET_DIR`, else `target` in the workspace.
fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
}
