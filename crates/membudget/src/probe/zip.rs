//! ZIP probe. (Being written.)

use super::Probe;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// ZIP header details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZipInfo {}

/// Probe a ZIP file.
pub fn probe(_path: &Path) -> Result<Probe> {
    Err(Error::unsupported("ZIP probe not available yet"))
}
