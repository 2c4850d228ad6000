//! The registry of the workspace's tools: every tool listed here gets a man page and
//! completions from `cargo xtask docs`, generated from the same clap command it parses
//! its arguments with.

/// One tool of the workspace.
#[derive(Debug, Clone, Copy)]
pub struct Tool {
    /// The binary's name (`mem-estimate`).
    pub name: &'static str,
    /// Its clap command, from `tools/<name>/src/lib.rs`.
    pub command: fn() -> clap::Command,
}

/// Every tool, in the order they appear in a pipeline.
///
/// A new tool adds ONE line here (and its path dependency in crates/xtask/Cargo.toml),
/// then runs `cargo xtask docs` and commits man/ and completions/, e.g.:
/// `Tool { name: strip_convert::NAME, command: strip_convert::command },`
pub const TOOLS: &[Tool] = &[
    Tool {
        name: mem_estimate::NAME,
        command: mem_estimate::command,
    },
    Tool {
        name: chunk_plan::NAME,
        command: chunk_plan::command,
    },
    Tool {
        name: laz_enrich::NAME,
        command: laz_enrich::command,
    },
    Tool {
        name: strip_convert::NAME,
        command: strip_convert::command,
    },
];
