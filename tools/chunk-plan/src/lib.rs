//! `chunk-plan`: turn a memory budget into chunk geometry and worker counts per record.

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches};
use membudget::cli::{self, BudgetArgs, Input, InputArgs, LogArgs, Output, Status};

/// The tool's name, as in records and messages.
pub const NAME: &str = "chunk-plan";

/// The command line.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    #[command(flatten)]
    log: LogArgs,
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    Opts::augment_args(
        Command::new(NAME)
            .version(env!("CARGO_PKG_VERSION"))
            .about("Turn a memory budget into chunk geometry and worker counts per record"),
    )
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let opts = Opts::from_arg_matches(m)?;
    let mut out = Output::new(NAME);
    for input in cli::inputs(NAME, &opts.input) {
        let record = match input {
            Input::Bad(r) | Input::Record(r) => r,
        };
        out.write(&record)?;
    }
    Ok(out.status())
}

#[cfg(test)]
mod tests {
    #[test]
    fn command_is_valid() {
        super::command().debug_assert();
    }
}
