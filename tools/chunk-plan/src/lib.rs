//! `chunk-plan`: turn a memory budget into chunk geometry and worker counts per record.
//!
//! For each input record (from `mem-estimate`, or a plain path, which is then probed) and
//! each tool that can process it (or the tools named by `--for`), the planner in
//! `membudget::plan` picks the largest chunk and the most workers whose predicted peak RSS
//! fits the budget, and writes them under `plan.<tool>`. With `--shards N` the records are
//! spread over N machines (longest processing time first) and `plan.shard` says where
//! each goes; `--order` sorts the output.

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches, ValueEnum};
use membudget::cli::{self, BudgetArgs, Input, InputArgs, LogArgs, Output, Status};
use membudget::cost::{self, CostModel, Summary};
use membudget::plan;
use membudget::system::SystemInfo;
use membudget::{probe, Budget, Error, Record};
use serde_json::json;

/// The tool's name, as in records and messages.
pub const NAME: &str = "chunk-plan";

/// Output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Order {
    /// As the inputs came (streams: each record is written as soon as it is planned).
    Input,
    /// Most work first: the order that keeps parallel workers busy to the end.
    Largest,
    /// Least work first.
    Smallest,
}

/// The command line.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    budget: BudgetArgs,
    /// Plan only for this tool (repeatable); default: every tool that can process the input
    #[arg(long = "for", value_name = "TOOL", value_parser = tool_names())]
    tools: Vec<String>,
    /// Spread the inputs over N machines, balancing the estimated work (writes plan.shard)
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
    /// Output order; any order but `input` (and --shards) reads all inputs first
    #[arg(long, value_enum, default_value_t = Order::Input)]
    order: Order,
    #[command(flatten)]
    log: LogArgs,
    /// The processing tools' options that change their plans, given as to the tool
    /// (last: their help headings would take the options after them).
    #[command(flatten)]
    tool_options: cost::ToolOptions,
}

fn tool_names() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(cost::model_names())
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    membudget::cli::tool_command::<Opts>(
        NAME,
        env!("CARGO_PKG_VERSION"),
        "Turn a memory budget into chunk geometry and worker counts per record",
        "Reads manifest records (from mem-estimate) or plain paths, and writes each \
                 record back with a `plan` section: for each tool that can process the input \
                 (or each --for tool), the largest chunk and the most workers whose predicted \
                 peak RSS fits the budget. A record no tool can fit becomes an error record \
                 naming the minimum memory needed, and the exit status is 3.\n\n\
                 A tool's options that change its memory (strip-convert's --profile and \
                 --tile, laz-enrich's radius, features, ground radius and tile points) are \
                 given here as to the tool: `chunk-plan --for strip-convert --profile bnf` \
                 plans what `strip-convert --profile bnf` runs. The plan records them under \
                 `options`, and the tool uses the plan (its tile and workers) only when its \
                 own options and budget are the same; otherwise it plans again and says why.",
    )
    .after_help(
        "Exit status: 0 all planned, 1 some inputs failed, 2 usage or fatal error, \
                 3 the budget cannot be met for some input.\n\n\
                 Example: find scans -name '*.tif' | mem-estimate | chunk-plan -m 256MiB -v",
    )
}

/// The models to plan for (`--for` ones, or all), made with the tools' options.
fn selected(tools: &[String], options: &cost::ToolOptions) -> Vec<Box<dyn CostModel>> {
    cost::models_with(options)
        .into_iter()
        .filter(|m| tools.is_empty() || tools.iter().any(|t| t == m.name()))
        .collect()
}

/// Plan one record in place. Returns the record's work (for shards and ordering).
fn plan_record(
    r: &mut Record,
    models: &[Box<dyn CostModel>],
    explicit: bool,
    budget: Budget,
    jobs: u32,
) -> f64 {
    if r.is_error() {
        return 0.0;
    }
    let summary = match Summary::from_record(r) {
        Ok(Some(s)) => s,
        Err(e) => {
            r.set_error(NAME, &e);
            return 0.0;
        }
        Ok(None) => match probe::probe_path(&r.path()) {
            Ok(p) => {
                cost::annotate(r, &p);
                Summary::from_probe(&p)
            }
            Err(e) => {
                r.set_error(NAME, &e);
                return 0.0;
            }
        },
    };
    r.set_in("plan", "budget_bytes", budget.bytes);
    let mut planned = 0;
    let mut first_error: Option<Error> = None;
    let mut work: f64 = 0.0;
    for m in models {
        if !m.applies(&summary) {
            if explicit {
                first_error.get_or_insert(Error::unsupported(format!(
                    "{} does not process {} files",
                    m.name(),
                    summary.format.as_str()
                )));
            }
            continue;
        }
        work = work.max(m.work(&summary));
        match plan::plan(m.as_ref(), &summary, budget, jobs) {
            Ok(p) => {
                for why in &p.reasons {
                    log::info!("{}: {}: {}", r.path_str(), m.name(), why);
                }
                r.set_in(
                    "plan",
                    m.name(),
                    serde_json::to_value(&p).unwrap_or_default(),
                );
                planned += 1;
            }
            Err(e) => {
                log::info!("{}: {}: {}", r.path_str(), m.name(), e.message);
                r.set_in(
                    "plan",
                    m.name(),
                    json!({"error": {"kind": e.kind, "message": e.message}}),
                );
                first_error.get_or_insert(e);
            }
        }
    }
    // With --for every named tool must fit; otherwise one fitting tool is enough.
    let failed = if explicit {
        first_error.is_some()
    } else {
        planned == 0
    };
    if failed {
        let e = first_error.unwrap_or_else(|| {
            Error::unsupported(format!(
                "no tool processes this {} file (no image, points, archive or pages)",
                summary.format.as_str()
            ))
        });
        r.set_error(NAME, &e);
    }
    work
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let opts = Opts::from_arg_matches(m)?;
    let sys = SystemInfo::probe();
    // A budget that does not parse is a usage error: `cli::main` prints it, exit 2.
    let budget = opts.budget.budget(&sys)?;
    if sys.heavy_swap() {
        log::warn!("swap is more than half in use: planning one worker");
    }
    let jobs = u32::try_from(opts.budget.jobs(&sys)).unwrap_or(u32::MAX);
    log::info!(
        "budget {budget} ({}); at most {jobs} workers ({})",
        budget.source,
        if opts.budget.jobs.is_some() {
            "--jobs"
        } else if sys.heavy_swap() {
            "swap is heavily used"
        } else {
            "the CPUs this process may use"
        }
    );
    let models = selected(&opts.tools, &opts.tool_options);
    let explicit = !opts.tools.is_empty();
    let mut out = Output::new(NAME);
    let buffered = opts.shards.is_some() || opts.order != Order::Input;
    let mut held: Vec<(Record, f64)> = Vec::new();
    let bar = cli::progress(None, &opts.log);
    for input in cli::inputs(NAME, &opts.input) {
        let input = input?;
        bar.inc(1);
        let (record, work) = match input {
            Input::Bad(r) => (r, 0.0),
            Input::Record(mut r) => {
                let w = plan_record(&mut r, &models, explicit, budget, jobs);
                (r, w)
            }
        };
        if buffered {
            held.push((record, work));
        } else {
            out.write(&record)?;
        }
    }
    bar.finish_and_clear();
    if buffered {
        if let Some(n) = opts.shards {
            let works: Vec<f64> = held.iter().map(|(_, w)| *w).collect();
            let assigned = plan::shard(&works, n);
            let mut load = vec![0.0; n as usize];
            for ((r, w), s) in held.iter_mut().zip(assigned) {
                if !r.is_error() {
                    r.set_in("plan", "shard", s);
                }
                load[s as usize] += *w;
            }
            log::info!("shard loads (work units): {load:?}");
        }
        match opts.order {
            Order::Input => {}
            Order::Largest => held.sort_by(|a, b| b.1.total_cmp(&a.1)),
            Order::Smallest => held.sort_by(|a, b| a.1.total_cmp(&b.1)),
        }
        for (r, _) in &held {
            out.write(r)?;
        }
    }
    Ok(out.status())
}
