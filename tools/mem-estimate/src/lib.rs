//! `mem-estimate`: probe each input (headers only) and estimate what each membudget tool
//! would need in memory to process it, smallest chunk and whole input.

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use membudget::cli::{self, Input, InputArgs, LogArgs, Output, Status};
use membudget::probe;
use membudget::system::SystemInfo;

/// The tool's name, as in records and messages.
pub const NAME: &str = "mem-estimate";

/// The command line.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    input: InputArgs,
    /// First write one record describing the machine (RAM, swap, cgroup limit, CPUs)
    #[arg(long)]
    system: bool,
    #[command(flatten)]
    log: LogArgs,
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    membudget::cli::tool_command::<Opts>(
        NAME,
        env!("CARGO_PKG_VERSION"),
        "Probe files (headers only) and estimate the memory each tool needs",
        "Reads paths or NDJSON manifest records (arguments, `-` or stdin), probes each \
                 file's headers without reading pixel data or points, and writes the record \
                 back with `format`, `bytes`, a summary (`image`, `points`, `archive` or \
                 `document`), a format section (`tiff`, `fits`, `las`...) and `estimate`: the \
                 smallest and whole-input memory footprint of each tool that can process it.",
    )
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let opts = Opts::from_arg_matches(m)?;
    let mut out = Output::new(NAME);
    if opts.system {
        let sys = SystemInfo::probe();
        let mut r = membudget::Record::new("");
        r.remove("path");
        r.set("system", serde_json::to_value(&sys)?);
        out.write(&r)?;
    }
    let bar = cli::progress(None, &opts.log);
    for input in cli::inputs(NAME, &opts.input) {
        let input = input?;
        let record = match input {
            Input::Bad(r) => r,
            Input::Record(mut r) => {
                match probe::probe_path(&r.path()) {
                    Ok(p) => membudget::cost::annotate(&mut r, &p),
                    Err(e) => r.set_error(NAME, &e),
                }
                r
            }
        };
        bar.inc(1);
        out.write(&record)?;
    }
    bar.finish_and_clear();
    Ok(out.status())
}
