fn main() -> std::process::ExitCode {
    membudget::cli::main(
        tile_enhance::NAME,
        tile_enhance::command(),
        tile_enhance::run,
    )
}
