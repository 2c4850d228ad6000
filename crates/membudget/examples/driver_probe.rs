//! A tool made of the record driver and a per-input function that misbehaves on purpose,
//! for `tests/driver.rs`: an input named `fail` fails, `panic` panics, `pages` writes
//! three page records, `skip` is discarded, `helper` panics in a helper thread, anything
//! else gets a section. With `-j N` inputs run side by side
//! ([`driver::for_each_record_batch`], budget `--budget` bytes): `sleep:MS` sleeps MS
//! milliseconds and records its share and when it started and ended (milliseconds since
//! the run began), and `hold:MIB` holds MIB MiB for a while. `threads` records the
//! process's threads while it runs.

use clap::{Args, Command, FromArgMatches};
use membudget::cli::{self, InputArgs, LogArgs};
use membudget::{driver, Error, Record};

const NAME: &str = "driver-probe";

#[derive(Debug, Args)]
struct Opts {
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    log: LogArgs,
    /// Inputs in flight at most, on the batch driver (without it: the one-at-a-time
    /// driver)
    #[arg(short = 'j', long)]
    jobs: Option<usize>,
    /// Inputs in flight at most, when more than --jobs (the threads)
    #[arg(long)]
    in_flight: Option<usize>,
    /// The batch's budget in bytes
    #[arg(long, default_value_t = 1 << 30)]
    budget: u64,
    #[command(flatten)]
    batch: driver::BatchArgs,
}

/// The per-input function (see the module's doc).
fn one(r: &mut Record, job: &mut driver::Job, t0: std::time::Instant) -> Result<(), Error> {
    let name = r.path_str().to_string();
    let ms = |t: std::time::Instant| t.duration_since(t0).as_millis() as u64;
    if let Some(d) = name.strip_prefix("sleep:") {
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(d.parse().unwrap_or(0)));
        r.set_in(NAME, "start_ms", ms(start));
        r.set_in(NAME, "end_ms", ms(std::time::Instant::now()));
        if let Some(s) = job.share() {
            r.set_in(NAME, "share_budget", s.budget);
            r.set_in(NAME, "share_threads", s.threads as u64);
        }
        r.set_in(NAME, "status", "ok");
        return Ok(());
    }
    if let Some(m) = name.strip_prefix("hold:") {
        let v = vec![1u8; m.parse::<usize>().unwrap_or(0) << 20];
        std::thread::sleep(std::time::Duration::from_millis(200));
        r.set_in(NAME, "sum", v.iter().map(|&b| u64::from(b)).sum::<u64>());
        r.set_in(NAME, "status", "ok");
        return Ok(());
    }
    match name.as_str() {
        "threads" => {
            let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
            let n = membudget::monitor::parse_status_field(&status, "Threads").unwrap_or(0);
            r.set_in(NAME, "threads", n);
            r.set_in(NAME, "status", "ok");
            Ok(())
        }
        "fail" => Err(Error::corrupt("bad input")),
        "panic" => panic!("a bug in the per-input function"),
        "helper" => std::thread::scope(|s| {
            s.spawn(|| panic!("a bug in a helper thread"));
            Ok(())
        }),
        "skip" => {
            job.discard();
            Ok(())
        }
        "pages" => {
            for page in 1..=3 {
                let mut p: Record = r.clone();
                p.set_in(NAME, "page", page);
                job.emit(p)?;
            }
            Ok(())
        }
        _ => {
            // Some memory, so the peak is measurable.
            let v = vec![1u8; 8 << 20];
            r.set_in(NAME, "sum", v.iter().map(|&b| u64::from(b)).sum::<u64>());
            r.set_in(NAME, "status", "ok");
            Ok(())
        }
    }
}

fn main() -> std::process::ExitCode {
    let command = Opts::augment_args(Command::new(NAME));
    cli::main(NAME, command, |m| {
        let opts = Opts::from_arg_matches(m)?;
        let t0 = std::time::Instant::now();
        if let Some(jobs) = opts.jobs {
            let batch = driver::Batch {
                budget: opts.budget,
                jobs,
                in_flight: opts.in_flight.unwrap_or(jobs),
                unordered: opts.batch.unordered,
                planned_budgets: true,
                // No cost model: an estimate in the record is the least need.
                least: &|r| driver::least_need(NAME, r, |_| None),
            };
            return driver::for_each_record_batch(
                NAME,
                &opts.input,
                &opts.log,
                &batch,
                |r, job| one(r, job, t0),
            );
        }
        driver::for_each_record(NAME, &opts.input, &opts.log, |r, job| one(r, job, t0))
    })
}
