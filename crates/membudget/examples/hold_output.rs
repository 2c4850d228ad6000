//! The smallest tool on `membudget::cli`, kept for the interrupt tests
//! (`tests/interrupt.rs`): it opens an [`AtomicFile`] for its one argument, writes part
//! of it, prints the temporary file's path and waits to be interrupted. It also shows
//! the shape every tool's `main` has.

use clap::{Arg, Command};
use membudget::cli::{self, AtomicFile, Status};
use std::io::Write;
use std::path::Path;

fn main() -> std::process::ExitCode {
    let command = Command::new("hold-output").arg(Arg::new("dest").required(true));
    cli::main("hold-output", command, |m| {
        let dest = m
            .get_one::<String>("dest")
            .map(String::as_str)
            .unwrap_or("");
        let mut out = AtomicFile::create(Path::new(dest))?;
        out.file().write_all(b"half of an output")?;
        // A worker thread, as tools have: signals must still end the run cleanly.
        let worker = std::thread::spawn(|| loop {
            std::thread::park();
        });
        println!("{}", out.temp_path().display());
        std::io::stdout().flush()?;
        let _ = worker.join();
        out.commit()?;
        Ok(Status::Ok)
    })
}
