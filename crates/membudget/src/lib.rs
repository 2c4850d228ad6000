//! `membudget`: memory budgets that hold in fact, shared by every tool of the workspace.
//!
//! The crate answers four questions for tools that process files far larger than memory:
//!
//! - **What is this file?** [`probe`] reads headers only (TIFF, JPEG, PNG, JPEG 2000,
//!   FITS, LAS/LAZ/COPC, ZIP/CBZ, PDF), never pixel data or points.
//! - **What will processing it cost?** [`cost`] holds one model per operation: a fixed
//!   overhead plus a cost per unit of work in flight, calibrated against measured peak RSS.
//! - **How should it be cut?** [`plan`] turns a [`budget::Budget`] into chunk geometry and
//!   a worker count, or refuses with the minimum that would fit.
//! - **Is the budget holding?** [`monitor`] reads RSS and peak RSS (own and children's):
//!   every record carries the measured peak, and each tool's tests hold its model to it.
//!
//! Tools talk NDJSON: [`manifest::Record`] is one line, and [`cli`] holds the plumbing
//! (inputs, output, exit codes, atomic outputs, progress, logging) written once for all.

pub mod budget;
pub mod cli;
pub mod cost;
pub mod driver;
pub mod error;
pub mod manifest;
pub mod monitor;
pub mod outputs;
pub mod plan;
pub mod probe;
pub mod readahead;
pub mod system;
pub mod units;

pub use budget::Budget;
pub use error::{Error, ErrorKind};
pub use manifest::Record;
