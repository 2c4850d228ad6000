//! The shared flag groups (inputs, budget, outputs, logging) and option parsers.

use crate::budget::Budget;
use crate::error::{Error, ErrorKind};
use crate::manifest::Record;
use crate::system::SystemInfo;
use clap::{ArgAction, Args};
use std::ffi::{OsStr, OsString};
use std::path::{Component, Path, PathBuf};

/// Inputs: paths or manifest records, as arguments or on stdin.
#[derive(Debug, Clone, Args)]
pub struct InputArgs {
    /// Input files or manifest lines; `-` or nothing reads paths or NDJSON records from stdin
    #[arg(value_name = "INPUT")]
    pub inputs: Vec<OsString>,
    /// Expand directories into the files below them (sorted, hidden files skipped)
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

/// The memory budget and concurrency.
#[derive(Debug, Clone, Args)]
pub struct BudgetArgs {
    /// Memory budget for peak RSS: bytes (512MiB, 2G, 1.5GiB, 1000000) or a share of
    /// available memory (60%). Default: 70% of the smallest of available memory, the
    /// cgroup limit and the room left under it (the limit less what other processes in
    /// the cgroup hold, page cache not counted)
    #[arg(short = 'm', long, value_name = "SIZE", value_parser = memory_limit)]
    pub memory_limit: Option<String>,
    /// Workers or threads at most (default: the CPUs this process may use); fewer run
    /// when the budget holds fewer, and the record says how many ran. Tools that run
    /// several inputs at once keep up to this many in flight, or twice the CPUs without
    /// -j (each input gets at least one thread: small inputs wait on I/O part of the time)
    #[arg(short = 'j', long, value_name = "N", value_parser = at_least_one)]
    pub jobs: Option<usize>,
}

/// `--memory-limit` is checked as clap parses it: a budget that does not parse is a usage
/// error before any input is read (a share like `60%` is resolved later, per machine).
pub(super) fn memory_limit(s: &str) -> Result<String, String> {
    s.parse::<crate::budget::BudgetSpec>()
        .map(|_| s.to_string())
        .map_err(|e| e.message)
}

/// An output file name made from `input`'s file stem (`a` of `dir/a.tif`, or `default`
/// when it has none) followed by `suffix` (`.thumb.jpg`), byte for byte: an input name
/// that is not UTF-8 (Latin-1 from an old scanner PC) gives an output name with the same
/// bytes, not a U+FFFD that another input could share.
pub fn stem_name(input: &Path, default: &str, suffix: &str) -> OsString {
    let mut name = input
        .file_stem()
        .unwrap_or(OsStr::new(default))
        .to_os_string();
    name.push(suffix);
    name
}

/// A usage error found by a tool's own checks of its options (those clap cannot check
/// alone, e.g. two options that must agree): `return Err(cli::usage("..."))` from `run`
/// **before the first input is read** (before `cli::inputs`), and [`main`] prints
/// `tool: message` and exits 2, with no record written. A bad option is never a
/// per-record error.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Error::new(ErrorKind::Usage, message).into()
}

/// A clap value parser for a finite number in `min..=max` (`--min-ssim`: 0 to 1), so a
/// value out of range is a usage error (exit 2) before any input is read:
/// `#[arg(long, value_parser = cli::number_in(0.0, 1.0))]`.
pub fn number_in(min: f64, max: f64) -> impl Fn(&str) -> Result<f64, String> + Clone + Send + Sync {
    move |s: &str| {
        let v: f64 = s
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not a number"))?;
        if v.is_finite() && v >= min && v <= max {
            Ok(v)
        } else {
            Err(format!("must be from {min} to {max}"))
        }
    }
}

/// A clap value parser for a finite number above zero (a radius, a compression ratio):
/// `#[arg(long, value_parser = cli::positive_number)]`.
pub fn positive_number(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err("must be a number above 0".into())
    }
}

/// `--jobs 0` would plan no work at all: refuse it as a usage error rather than quietly
/// running one worker.
pub(super) fn at_least_one(s: &str) -> Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

impl BudgetArgs {
    /// Resolve the budget against the machine.
    pub fn budget(&self, sys: &SystemInfo) -> Result<Budget, Error> {
        Budget::from_arg(self.memory_limit.as_deref(), sys)
    }
    /// The budget an upstream `chunk-plan` planned `record` for (`plan.budget_bytes`),
    /// when `--memory-limit` was not given: `chunk-plan -m 256MiB | tool` keeps to
    /// 256 MiB. `None` when `--memory-limit` was given or the record has no plan.
    pub fn planned(&self, record: &Record) -> Option<Budget> {
        if self.memory_limit.is_some() {
            return None;
        }
        let bytes = record.get("plan")?.get("budget_bytes")?.as_u64()?;
        Some(Budget::bytes(bytes))
    }

    /// Workers at most: `--jobs` or the usable CPUs (one when swap is heavily used).
    pub fn jobs(&self, sys: &SystemInfo) -> usize {
        let cpus = if sys.heavy_swap() { 1 } else { sys.cpus.max(1) };
        self.jobs.unwrap_or(cpus).max(1)
    }
}

/// Where outputs go.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Write outputs under this directory, mirroring the input tree (see --base);
    /// default: beside each input
    #[arg(short = 'o', long, value_name = "DIR")]
    pub output_dir: Option<PathBuf>,
    /// The part of input paths not mirrored under --output-dir (default: none for
    /// relative paths, the parent directory for absolute ones)
    #[arg(long, value_name = "DIR", requires = "output_dir")]
    pub base: Option<PathBuf>,
    /// Overwrite existing outputs (by default they are skipped); an input of the run is
    /// never overwritten
    #[arg(short = 'f', long)]
    pub force: bool,
    /// Say what would be done, write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

impl OutputArgs {
    /// The output path for `input`, given the output's file name (`a.jp2`).
    /// Mirrors the input's directories under `--output-dir`, never outside it (leading
    /// `..` components are dropped).
    pub fn output_path(
        &self,
        input: &Path,
        file_name: impl AsRef<OsStr>,
    ) -> Result<PathBuf, Error> {
        let file_name = file_name.as_ref();
        let parent = input.parent().unwrap_or(Path::new(""));
        let Some(out) = &self.output_dir else {
            return Ok(parent.join(file_name));
        };
        let rel: PathBuf = match &self.base {
            Some(base) => parent
                .strip_prefix(base)
                .map_err(|_| {
                    Error::new(
                        ErrorKind::BadRecord,
                        format!("{} is not under --base {}", input.display(), base.display()),
                    )
                })?
                .to_path_buf(),
            None if parent.is_absolute() => PathBuf::new(),
            None => parent.to_path_buf(),
        };
        // Resolve `.` and `dir/..` lexically; `..` left over at the start (`../scans/a.tif`)
        // is dropped, as tar does, so an output never lands outside --output-dir.
        let mut clean = PathBuf::new();
        for c in rel.components() {
            match c {
                Component::Normal(p) => clean.push(p),
                Component::ParentDir => {
                    clean.pop();
                }
                Component::CurDir | Component::RootDir | Component::Prefix(_) => {}
            }
        }
        Ok(out.join(clean).join(file_name))
    }
}

/// A tool's clap command: the arguments of `A`, then its name, version, about and long
/// about. Set after the arguments: clap takes a struct's doc comment as `about`, and the
/// tool's own must win. A tool made of subcommands requires one (and shows its help
/// without).
pub fn tool_command<A: Args>(
    name: &'static str,
    version: &'static str,
    about: impl Into<clap::builder::StyledStr>,
    long_about: impl Into<clap::builder::StyledStr>,
) -> clap::Command {
    let cmd = A::augment_args(clap::Command::new(name))
        .version(version)
        .about(about.into())
        .long_about(long_about.into());
    let sub = cmd.has_subcommands();
    cmd.subcommand_required(sub).arg_required_else_help(sub)
}

/// The command line of a tool made of subcommands (`cbz-stream pack`, `tile-enhance
/// spots`...): the subcommand, and the log flags every one of them takes.
#[derive(Debug, Args)]
pub struct SubcommandArgs<C: clap::Subcommand> {
    #[command(subcommand)]
    pub cmd: C,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Logging verbosity.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Less on stderr: -q hides warnings and progress, -qq hides per-input errors too
    #[arg(short = 'q', long, action = ArgAction::Count, global = true)]
    pub quiet: u8,
    /// More on stderr: -v explains decisions, -vv traces
    #[arg(short = 'v', long, action = ArgAction::Count, global = true)]
    pub verbose: u8,
}

impl LogArgs {
    /// The log level these flags select.
    pub fn level(&self) -> log::LevelFilter {
        match i16::from(self.verbose) - i16::from(self.quiet) {
            i16::MIN..=-2 => log::LevelFilter::Off,
            -1 => log::LevelFilter::Error,
            0 => log::LevelFilter::Warn,
            1 => log::LevelFilter::Info,
            2 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_budget_unless_given() {
        let mut r = Record::new("a.tif");
        r.set_in("plan", "budget_bytes", 1234u64);
        let none = BudgetArgs {
            memory_limit: None,
            jobs: None,
        };
        assert_eq!(none.planned(&r), Some(Budget::bytes(1234)));
        assert_eq!(none.planned(&Record::new("b.tif")), None);
        let given = BudgetArgs {
            memory_limit: Some("1G".into()),
            jobs: None,
        };
        assert_eq!(given.planned(&r), None);
    }

    #[test]
    fn option_value_parsers_refuse_out_of_range_values() {
        let ssim = number_in(0.0, 1.0);
        assert_eq!(ssim("0.95"), Ok(0.95));
        for bad in ["2", "-0.1", "nan", "inf", "x"] {
            assert!(ssim(bad).is_err(), "{bad}");
        }
        assert_eq!(positive_number("4"), Ok(4.0));
        for bad in ["0", "-1", "nan", "inf", ""] {
            assert!(positive_number(bad).is_err(), "{bad}");
        }
        assert!(memory_limit("18446744073709551616").is_err());
        assert_eq!(memory_limit("60%").as_deref(), Ok("60%"));
        let e = usage("--codeblock 48: sides must be powers of two");
        assert_eq!(
            e.downcast_ref::<Error>().map(|e| e.kind),
            Some(ErrorKind::Usage)
        );
    }

    #[test]
    fn output_paths_mirror_and_refuse_escape() {
        let o = OutputArgs {
            output_dir: Some("out".into()),
            base: None,
            force: false,
            dry_run: false,
        };
        assert_eq!(
            o.output_path(Path::new("scans/a/b.tif"), "b.jp2").unwrap(),
            Path::new("out/scans/a/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("/abs/b.tif"), "b.jp2").unwrap(),
            Path::new("out/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("../x/b.tif"), "b.jp2").unwrap(),
            Path::new("out/x/b.jp2")
        );
        assert_eq!(
            o.output_path(Path::new("a/../../../x/./b.tif"), "b.jp2")
                .unwrap(),
            Path::new("out/x/b.jp2")
        );
        let o = OutputArgs {
            base: Some("/data/in".into()),
            ..o
        };
        assert_eq!(
            o.output_path(Path::new("/data/in/y/b.tif"), "b.jp2")
                .unwrap(),
            Path::new("out/y/b.jp2")
        );
        let here = OutputArgs {
            output_dir: None,
            base: None,
            force: false,
            dry_run: false,
        };
        assert_eq!(
            here.output_path(Path::new("d/b.tif"), "b.jp2").unwrap(),
            Path::new("d/b.jp2")
        );
    }
}
