//! `spots` (being built).

use anyhow::Result;
use clap::Args;
use membudget::cli::{InputArgs, LogArgs, OutputArgs, Status};

/// `--help` text.
pub const LONG_ABOUT: &str = "Being built.";

/// `spots` options.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Run `spots`.
pub fn run(_o: &Opts, _log: &LogArgs) -> Result<Status> {
    anyhow::bail!("tile-enhance spots: not built yet")
}
