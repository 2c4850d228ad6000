fn main() -> std::process::ExitCode {
    membudget::cli::main(cbz_stream::NAME, cbz_stream::command(), cbz_stream::run)
}
