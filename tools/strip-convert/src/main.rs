fn main() -> std::process::ExitCode {
    membudget::cli::main(
        strip_convert::NAME,
        strip_convert::command(),
        strip_convert::run,
    )
}
