//! Planning: a memory budget to chunk geometry and a worker count, per input.
//!
//! The search, for one cost model and one input:
//!
//! 1. For each worker count from the most allowed down to one, take the largest chunk
//!    whose predicted peak fits the budget with that many workers. Accept it if it is at
//!    least the model's *efficient* chunk (below that, per-chunk overheads eat the gain
//!    of another worker).
//! 2. If no worker count passes, use one worker and the largest chunk that fits at all.
//! 3. If even the smallest chunk with one worker does not fit, refuse with an
//!    [`ErrorKind::Budget`] error naming the minimum needed (tools exit 3).
//!
//! The plan never exceeds the budget by its own model (a property the tests check).
//! [`shard`] balances inputs across machines, longest processing time first.

use crate::budget::Budget;
pub use crate::cost::{most_workers, Chosen};
use crate::cost::{CostModel, Summary};
use crate::error::{Error, ErrorKind};
use crate::units::human_bytes;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A plan for one input and one tool, written under `plan.<tool>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The chunk size in the model's unit.
    pub chunk: u64,
    /// What `chunk` counts (`tile_side`, `rows`, `points`, `entries`, `pages`).
    pub chunk_unit: String,
    /// The chunk's geometry (`tile`, `halo`, `rows`, ...), merged into the section.
    #[serde(flatten)]
    pub geometry: serde_json::Map<String, Value>,
    /// Workers (threads or processes) to run at once.
    pub workers: u32,
    /// The model's predicted peak RSS for this plan.
    pub predicted_peak_bytes: u64,
    /// The model's minimum (smallest chunk, one worker).
    pub min_bytes: u64,
    /// The model's whole-input footprint.
    pub whole_bytes: u64,
    /// The tool options the plan was made for ([`CostModel::options`]): a tool uses the
    /// plan only when its own options are these.
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub options: Value,
    /// Why these numbers, for `-v` and for people reading the record.
    #[serde(skip)]
    pub reasons: Vec<String>,
}

/// Plan `model` for input `s` within `budget`, with at most `max_workers` workers: the
/// model's own rule when it has one ([`CostModel::plan`]: the tool runs exactly that),
/// else the search described in the module documentation.
pub fn plan(
    model: &dyn CostModel,
    s: &Summary,
    budget: Budget,
    max_workers: u32,
) -> Result<Plan, Error> {
    if !model.applies(s) {
        return Err(Error::unsupported(format!(
            "{} does not process {} files",
            model.name(),
            s.format.as_str()
        )));
    }
    let generic = |b: u64| {
        search(model, s, Budget::bytes(b), max_workers).map(|p| Chosen {
            chunk: p.chunk,
            workers: p.workers,
            geometry: Value::Object(p.geometry),
            predicted_peak_bytes: p.predicted_peak_bytes,
            reasons: p.reasons,
        })
    };
    let mut p = match model.own_plan(s, budget.bytes, max_workers, &generic) {
        Some(c) => {
            let c = c?;
            let chunks = model.chunks(s);
            let smallest = chunks.last().copied().unwrap_or(c.chunk);
            Plan {
                chunk: c.chunk,
                chunk_unit: model.chunk_unit().to_string(),
                geometry: match c.geometry {
                    Value::Object(m) => m,
                    _ => serde_json::Map::new(),
                },
                workers: c.workers,
                predicted_peak_bytes: c.predicted_peak_bytes,
                min_bytes: model.peak_bytes(s, smallest, 1),
                whole_bytes: model.whole_bytes(s),
                options: Value::Null,
                reasons: c.reasons,
            }
        }
        None => search(model, s, budget, max_workers)?,
    };
    p.options = model.options();
    Ok(p)
}

/// The generic search for models without a rule of their own.
fn search(
    model: &dyn CostModel,
    s: &Summary,
    budget: Budget,
    max_workers: u32,
) -> Result<Plan, Error> {
    if !model.applies(s) {
        return Err(Error::unsupported(format!(
            "{} does not process {} files",
            model.name(),
            s.format.as_str()
        )));
    }
    let chunks = model.chunks(s);
    let Some(&smallest) = chunks.last() else {
        return Err(Error::unsupported(format!(
            "{}: nothing to process",
            model.name()
        )));
    };
    let b = budget.bytes;
    let min_bytes = model.peak_bytes(s, smallest, 1);
    // Workers the work can use at all (the smallest chunk gives the most chunks), and no
    // more than fit with the smallest chunk (the peak grows with workers: a binary
    // search), so `--jobs 1000000` plans what runs, quickly.
    let useful = u32::try_from(model.max_workers(s, smallest)).unwrap_or(u32::MAX);
    let requested = max_workers.max(1);
    let max_workers = most_workers(requested.min(useful), |w| {
        model.peak_bytes(s, smallest, w) <= b
    })
    .unwrap_or(1);
    if min_bytes > b {
        return Err(Error::new(
            ErrorKind::Budget,
            format!(
                "{} needs at least {} ({} {} with one worker) but the budget is {}",
                model.name(),
                human_bytes(min_bytes),
                smallest,
                model.chunk_unit(),
                human_bytes(b)
            ),
        ));
    }
    let efficient = model.efficient_chunk(s).min(chunks[0]);
    let largest_fitting = |w: u32| {
        chunks
            .iter()
            .copied()
            .find(|&c| model.peak_bytes(s, c, w) <= b)
    };
    let mut reasons = Vec::new();
    // More workers never allow a larger chunk: the most workers whose largest fitting
    // chunk is still efficient is found by bisection.
    let efficient_with = |w: u32| largest_fitting(w).is_some_and(|c| c >= efficient);
    let choice = if let Some(lo) = most_workers(max_workers, efficient_with) {
        if lo < max_workers {
            reasons.push(format!(
                "{} workers would need chunks below the efficient size {efficient}",
                lo + 1
            ));
        }
        largest_fitting(lo).map(|c| (c, lo))
    } else {
        largest_fitting(1).map(|c| (c, 1))
    };
    if let Some((c, w)) = choice {
        reasons.push(format!(
            "{} {}: the largest of {:?} whose predicted peak ({}) fits {} with {} worker{}",
            model.chunk_unit(),
            c,
            chunks,
            human_bytes(model.peak_bytes(s, c, w)),
            human_bytes(b),
            w,
            if w == 1 { "" } else { "s" }
        ));
    }
    // One worker always fits with the smallest chunk (checked above).
    let (chunk, chosen) = choice.unwrap_or((smallest, 1));
    let work = u32::try_from(model.max_workers(s, chunk)).unwrap_or(u32::MAX);
    let workers = chosen.min(work).max(1);
    if workers < chosen {
        reasons.push(format!(
            "{workers} workers: the chunks of {chunk} {} give no work to more",
            model.chunk_unit()
        ));
    } else if workers < requested {
        reasons.push(format!(
            "{workers} of {requested} allowed workers: more would not fit or find no work"
        ));
    } else if requested > 1 {
        reasons.push(format!(
            "{workers} workers: all that are allowed (--jobs, or the usable CPUs)"
        ));
    }
    let whole_bytes = model.whole_bytes(s);
    if whole_bytes <= b {
        reasons.push(format!(
            "the whole input ({}) would fit too",
            human_bytes(whole_bytes)
        ));
    }
    let geometry = match model.describe(s, chunk) {
        Value::Object(m) => m,
        other => {
            let mut m = serde_json::Map::new();
            m.insert("geometry".into(), other);
            m
        }
    };
    Ok(Plan {
        chunk,
        chunk_unit: model.chunk_unit().to_string(),
        geometry,
        workers,
        predicted_peak_bytes: model.peak_bytes(s, chunk, workers),
        min_bytes,
        whole_bytes,
        options: Value::Null,
        reasons,
    })
}

/// What a processing tool does with the plan `chunk-plan` wrote for it in a record.
#[derive(Debug, Clone, PartialEq)]
pub enum Planned {
    /// The plan was made for this run's options and budget: run it.
    Used(Box<Plan>),
    /// There is a plan but it does not hold for this run (why): the tool plans again.
    Replanned(String),
    /// The record has no plan for the tool: it plans on its own.
    None,
}

impl Planned {
    /// The record's `<tool>.plan` value: `"used"`, `"replanned: <why>"` or `"planned"`.
    pub fn describe(&self) -> String {
        match self {
            Planned::Used(_) => "used".into(),
            Planned::Replanned(why) => format!("replanned: {why}"),
            Planned::None => "planned".into(),
        }
    }

    /// The plan, when used.
    pub fn plan(&self) -> Option<&Plan> {
        match self {
            Planned::Used(p) => Some(p),
            _ => None,
        }
    }

    /// A used plan that does not hold after all (the tool's own check): replanned.
    pub fn reject(self, why: impl Into<String>) -> Planned {
        match self {
            Planned::Used(_) => Planned::Replanned(why.into()),
            other => other,
        }
    }
}

/// The plan `plan.<tool>` of `record`, when it was made for the run's `options` (the
/// tool's [`CostModel::options`]), its budget and at most its `jobs` workers; else why
/// not. The tool may still [`Planned::reject`] it (a different page, metadata the plan
/// did not count).
pub fn planned(
    record: &crate::manifest::Record,
    tool: &str,
    options: &Value,
    budget_bytes: u64,
    jobs: u64,
) -> Planned {
    let Some(section) = record.get("plan").and_then(|p| p.get(tool)) else {
        return Planned::None;
    };
    if let Some(m) = section
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Value::as_str)
    {
        return Planned::Replanned(format!("chunk-plan found no plan: {m}"));
    }
    let plan: Plan = match serde_json::from_value(section.clone()) {
        Ok(p) => p,
        Err(e) => return Planned::Replanned(format!("the plan is malformed: {e}")),
    };
    let planned_budget = record
        .get("plan")
        .and_then(|p| p.get("budget_bytes"))
        .and_then(Value::as_u64);
    if !same_values(&plan.options, options) {
        return Planned::Replanned(format!(
            "planned with options {}, run with {options}",
            plan.options
        ));
    }
    if planned_budget != Some(budget_bytes) {
        return Planned::Replanned(format!(
            "planned for a budget of {}, run with {}",
            planned_budget.map_or("none".into(), human_bytes),
            human_bytes(budget_bytes)
        ));
    }
    if u64::from(plan.workers) > jobs.max(1) {
        return Planned::Replanned(format!(
            "planned for {} workers, --jobs allows {jobs}",
            plan.workers
        ));
    }
    Planned::Used(Box::new(plan))
}

/// JSON values equal as data: numbers by value, so a record that passed through `jq`
/// (which writes `1.0` as `1`) still matches.
fn same_values(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_values(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_values(v, w)))
        }
        _ => a == b,
    }
}

/// Assign items of the given costs to `shards` bins, longest processing time first:
/// each item, largest first, goes to the least loaded shard (ties: the lowest index).
/// Returns the shard of each item, in the items' order. Deterministic.
pub fn shard(costs: &[f64], shards: u32) -> Vec<u32> {
    let n = shards.max(1) as usize;
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    let mut load = vec![0.0f64; n];
    let mut out = vec![0u32; costs.len()];
    for i in order {
        let (best, _) = load
            .iter()
            .enumerate()
            .min_by(|a, b| a.1.total_cmp(b.1).then(a.0.cmp(&b.0)))
            .unwrap_or((0, &0.0));
        load[best] += costs[i].max(0.0);
        out[i] = best as u32;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::{models, Summary};
    use crate::probe::{Format, ImageSummary, Layout, PointsSummary, SampleFormat};

    fn image(width: u64, height: u64, bands: u32, rows: u64) -> Summary {
        Summary {
            format: Format::Tiff,
            bytes: 0,
            image: Some(ImageSummary {
                width,
                height,
                bands,
                bits: 8,
                sample_format: SampleFormat::Uint,
                pages: 1,
                layout: Layout::Strips,
                block: [width, rows],
                compressed: false,
            }),
            points: None,
            archive: None,
            document: None,
        }
    }

    fn cloud(count: u64) -> Summary {
        Summary {
            format: Format::Laz,
            bytes: 0,
            image: None,
            points: Some(PointsSummary {
                count,
                record_bytes: 38,
                bounds: [0.0, 0.0, 0.0, 1000.0, 1000.0, 50.0],
                compressed: true,
            }),
            archive: None,
            document: None,
        }
    }

    #[test]
    fn plans_never_exceed_their_budget_and_shrink_with_it() {
        let mut rng = testkit::Rng::new(42);
        let mut next = || rng.next_u64();
        for _ in 0..300 {
            let s = if next() % 2 == 0 {
                image(
                    1 + next() % 60000,
                    1 + next() % 60000,
                    1 + (next() % 4) as u32,
                    1 + next() % 512,
                )
            } else {
                cloud(1 + next() % 50_000_000)
            };
            for m in models().iter().filter(|m| m.applies(&s)) {
                let mut last_peak = u64::MAX;
                let mut last_chunk = u64::MAX;
                for budget in [8u64 << 30, 1 << 30, 256 << 20, 64 << 20, 16 << 20] {
                    let workers = 1 + (next() % 4) as u32;
                    match plan(m.as_ref(), &s, Budget::bytes(budget), workers) {
                        Ok(p) => {
                            assert!(
                                p.predicted_peak_bytes <= budget,
                                "{}: {p:?} over {budget}",
                                m.name()
                            );
                            assert!(p.workers >= 1 && p.workers <= workers);
                            assert!(p.predicted_peak_bytes <= last_peak || workers > 1);
                            if workers == 1 {
                                assert!(
                                    p.chunk <= last_chunk,
                                    "{}: smaller budget, larger chunk",
                                    m.name()
                                );
                                last_chunk = p.chunk;
                            }
                            last_peak = p.predicted_peak_bytes;
                        }
                        Err(e) => {
                            assert_eq!(e.kind, ErrorKind::Budget);
                            // Refused only when the smallest chunk does not fit, or
                            // (strip-convert) when the tiles JPEG 2000's tile-count
                            // limit widens them to do not.
                            assert!(
                                m.peak_bytes(&s, *m.chunks(&s).last().unwrap(), 1) > budget
                                    || e.message.contains("at most 65535 tiles"),
                                "{}: {s:?} refused at {budget}: {}",
                                m.name(),
                                e.message
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn single_worker_chunks_shrink_with_the_budget() {
        let s = image(40000, 40000, 3, 16);
        let m = crate::cost::model("strip-convert").unwrap();
        let big = plan(m.as_ref(), &s, Budget::bytes(2 << 30), 1).unwrap();
        let small = plan(m.as_ref(), &s, Budget::bytes(64 << 20), 1).unwrap();
        assert!(small.chunk < big.chunk, "{small:?} vs {big:?}");
        assert!(small.predicted_peak_bytes <= 64 << 20);
    }

    #[test]
    fn impossible_budget_names_the_minimum() {
        let s = image(1_000_000, 1000, 3, 1000);
        let m = crate::cost::model("strip-convert").unwrap();
        let e = plan(m.as_ref(), &s, Budget::bytes(16 << 20), 2).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Budget);
        assert!(e.message.contains("needs at least"), "{}", e.message);
    }

    #[test]
    fn more_budget_buys_workers() {
        let s = image(20000, 20000, 3, 16);
        let m = crate::cost::model("strip-convert").unwrap();
        let p = plan(m.as_ref(), &s, Budget::bytes(8 << 30), 2).unwrap();
        assert_eq!(p.workers, 2);
        assert_eq!(p.chunk, 1024);
    }

    #[test]
    fn workers_are_capped_by_the_work_and_huge_jobs_plan_fast() {
        let m = crate::cost::model("strip-convert").unwrap();
        // 157x151 in tiles of at least 64: 9 tiles at most, whatever --jobs says.
        let s = image(157, 151, 3, 151);
        let started = std::time::Instant::now();
        let p = plan(m.as_ref(), &s, Budget::bytes(16 << 30), 1_000_000).unwrap();
        assert!(p.workers <= 9, "{p:?}");
        let tiles = 157u64.div_ceil(p.chunk) * 151u64.div_ceil(p.chunk);
        assert!(u64::from(p.workers) <= tiles, "{p:?}");
        // A large image with a huge budget and --jobs: planned in well under a second.
        let s = image(100_000, 100_000, 3, 16);
        let p = plan(m.as_ref(), &s, Budget::bytes(1 << 40), u32::MAX).unwrap();
        assert!(p.predicted_peak_bytes <= 1 << 40);
        assert!(started.elapsed().as_secs_f64() < 2.0);
    }

    #[test]
    fn shards_are_balanced_within_1_2_of_ideal() {
        let mut rng = testkit::Rng::new(7);
        let mut next = || rng.next_u64();
        for shards in [2u32, 3, 4, 8] {
            let costs: Vec<f64> = (0..200).map(|_| (1 + next() % 1000) as f64).collect();
            let a = shard(&costs, shards);
            let mut load = vec![0.0; shards as usize];
            for (c, s) in costs.iter().zip(&a) {
                load[*s as usize] += c;
            }
            let ideal = costs.iter().sum::<f64>() / f64::from(shards);
            let max = load.iter().cloned().fold(0.0, f64::max);
            assert!(
                max <= 1.2 * ideal,
                "{shards} shards: max {max} vs ideal {ideal}"
            );
            assert!(a.iter().all(|&s| s < shards));
        }
        assert_eq!(shard(&[5.0, 1.0, 4.0], 2), vec![0, 1, 1]);
    }
}
