//! A tool made of the record driver and a per-input function that misbehaves on purpose,
//! for `tests/driver.rs`: an input named `fail` fails, `panic` panics, `pages` writes
//! three page records, `skip` is discarded, `helper` panics in a helper thread, anything
//! else gets a section.

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
}

fn main() -> std::process::ExitCode {
    let command = Opts::augment_args(Command::new(NAME));
    cli::main(NAME, command, |m| {
        let opts = Opts::from_arg_matches(m)?;
        driver::for_each_record(NAME, &opts.input, &opts.log, |r, job| {
            let name = r.path_str().to_string();
            match name.as_str() {
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
        })
    })
}
