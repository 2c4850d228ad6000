fn main() -> std::process::ExitCode {
    membudget::cli::main(
        mem_estimate::NAME,
        mem_estimate::command(),
        mem_estimate::run,
    )
}
