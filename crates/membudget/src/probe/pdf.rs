//! PDF probe. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// PDF header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PdfInfo {}

/// Probe a PDF file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("PDF probe not available yet"))
}
