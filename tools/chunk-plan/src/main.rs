fn main() -> std::process::ExitCode {
    membudget::cli::main(chunk_plan::NAME, chunk_plan::command(), chunk_plan::run)
}
