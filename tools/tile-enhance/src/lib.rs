//! `tile-enhance`: neighbourhood operations on images larger than memory, by bands of rows
//! with a halo, so that a tiled result equals the whole-image result bit for bit.
//!
//! Each subcommand is one module with its options and its per-input function, run through
//! the batch driver ([`membudget::driver::ProcessingArgs`]: several inputs at once, each
//! with its share of the budget): [`enhance`] (tone curves, filters, resizing),
//! [`thumbnail`] (shrink-on-load thumbnails), [`spots`] (spot and star detection). Pixels
//! come from and go to `crates/raster`.

pub mod chain;
pub mod enhance;
pub mod filters;
pub mod point;
pub mod resize;
pub mod spots;
pub mod stage;
pub mod thumbnail;

use anyhow::Result;
use clap::{ArgMatches, Command, FromArgMatches, Subcommand};
use membudget::cli::Status;

/// The tool's name, as in records and messages.
pub const NAME: &str = "tile-enhance";

/// The command line.
pub type Cli = membudget::cli::SubcommandArgs<Cmd>;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Tone curves, filters and resizing, tiled and seamless
    #[command(long_about = enhance::LONG_ABOUT)]
    Enhance(Box<enhance::Opts>),
    /// Shrink-on-load thumbnails
    #[command(long_about = thumbnail::LONG_ABOUT)]
    Thumbnail(thumbnail::Opts),
    /// Spot and star detection, exact at tile borders, with multi-channel readout
    #[command(long_about = spots::LONG_ABOUT)]
    Spots(spots::Opts),
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    membudget::cli::tool_command::<Cli>(
        NAME,
        env!("CARGO_PKG_VERSION"),
        "Seamless enhancement, thumbnails and spot detection on images larger than memory",
        "Every subcommand reads paths or NDJSON manifest records (arguments, `-` or \
             stdin) and writes one NDJSON record per input with a `tile-enhance` section. \
             Images are read by bands of rows with a halo wide enough for each \
             neighbourhood operation, so memory follows the budget, not the image, and a \
             tiled result equals the whole-image result. Outputs are written under a \
             temporary name and renamed into place; existing outputs are skipped unless \
             --force; a bad input gets an error record and the run goes on.",
    )
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let cli = Cli::from_arg_matches(m)?;
    let log = &cli.log;
    match &cli.cmd {
        // The matches give the order of the steps on the command line.
        Cmd::Enhance(o) => enhance::run(o, m.subcommand_matches("enhance"), log),
        Cmd::Thumbnail(o) => thumbnail::run(o, log),
        Cmd::Spots(o) => spots::run(o, log),
    }
}
