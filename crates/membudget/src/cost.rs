//! Cost models: what an operation costs in peak RSS as a function of the chunk in flight.
//! (Being written.)

use crate::manifest::Record;
use crate::probe::Probe;

/// Write a probe's findings and the estimates into a record.
pub fn annotate(record: &mut Record, probe: &Probe) {
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(probe) {
        for (k, v) in map {
            record.set(k, v);
        }
    }
}
