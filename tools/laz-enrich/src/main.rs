fn main() -> std::process::ExitCode {
    membudget::cli::main(laz_enrich::NAME, laz_enrich::command(), laz_enrich::run)
}
