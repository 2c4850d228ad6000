//! The registry of the workspace's tools: every tool listed here gets a man page and
//! completions from `cargo xtask docs`, generated from the same clap command it parses
//! its arguments with, and is run by `cargo xtask fuzz` on the inputs it reads.

use crate::fuzz::Format;

/// One tool of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The binary's name (`mem-estimate`).
    pub name: &'static str,
    /// Its clap command, from `tools/<name>/src/lib.rs`.
    pub command: fn() -> clap::Command,
    /// The corpus formats `cargo xtask fuzz` feeds it; [`Format::Ndjson`] means manifest
    /// records on stdin (about a file of one of the other formats).
    pub reads: &'static [Format],
    /// Its arguments in a fuzz run, before the input; `{out}` stands for a fresh, empty
    /// output directory.
    pub fuzz_args: &'static [&'static str],
}

/// Every tool, in the order they appear in a pipeline.
///
/// A new tool adds ONE entry here (and its path dependency in crates/xtask/Cargo.toml),
/// then runs `cargo xtask docs` and commits man/ and completions/, e.g.:
/// `Tool { name: strip_convert::NAME, command: strip_convert::command, reads: &[..], fuzz_args: &[..] },`
pub const TOOLS: &[Tool] = &[
    Tool {
        name: mem_estimate::NAME,
        command: mem_estimate::command,
        reads: Format::ALL,
        fuzz_args: &[],
    },
    Tool {
        name: chunk_plan::NAME,
        command: chunk_plan::command,
        reads: Format::ALL,
        fuzz_args: &["-m", "256MiB"],
    },
    Tool {
        name: laz_enrich::NAME,
        command: laz_enrich::command,
        reads: &[Format::Las, Format::Ndjson],
        fuzz_args: &["-R", "1", "-f", "-o", "{out}"],
    },
    Tool {
        name: strip_convert::NAME,
        command: strip_convert::command,
        reads: &[Format::Tiff, Format::Ndjson],
        fuzz_args: &["-f", "-o", "{out}"],
    },
    Tool {
        name: tile_enhance::NAME,
        command: tile_enhance::command,
        reads: &[Format::Tiff, Format::Png, Format::Ndjson],
        fuzz_args: &["enhance", "-f", "-o", "{out}"],
    },
    Tool {
        name: cbz_stream::NAME,
        command: cbz_stream::command,
        reads: &[Format::Zip, Format::Ndjson],
        fuzz_args: &["unpack", "-f", "-o", "{out}"],
    },
];
