//! `cbz-stream`: comic archives (CBZ) packed, listed, unpacked and edited with one entry
//! in flight, never the archive in memory; scanned PDFs turned into CBZ with their page
//! images copied as they are.
//!
//! Each subcommand is one module with its per-input function, run through the batch
//! driver ([`membudget::driver::ProcessingArgs`]; `edit` and packing into one archive
//! one at a time): [`pack`], [`list`] and [`unpack`], [`edit`],
//! [`from_pdf`], [`convert`], [`cover`]. What they share about ZIP files is in [`archive`]; natural
//! order in [`natural`]; ComicInfo.xml in [`comicinfo`].

pub mod archive;
pub mod comicinfo;
pub mod convert;
pub mod cover;
pub mod edit;
pub mod from_pdf;
pub mod list;
pub mod natural;
pub mod pack;
pub mod pdf_image;
pub mod unpack;

use anyhow::Result;
use clap::{ArgMatches, Args, Command, FromArgMatches, Subcommand};
use membudget::cli::{AtomicFile, InputArgs, OutputArgs, Status};
use membudget::driver::{Job, ProcessingArgs};
use membudget::{Error, Record};
use std::path::{Path, PathBuf};

/// The tool's name, as in records and messages.
pub const NAME: &str = "cbz-stream";

/// The command line.
pub type Cli = membudget::cli::SubcommandArgs<Cmd>;

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Pack page images (directories, files or NDJSON page records) into CBZ archives
    #[command(long_about = pack::LONG_ABOUT)]
    Pack(PackOpts),
    /// One record per entry of each archive: name, sizes, method, image format and size
    #[command(long_about = list::LONG_ABOUT)]
    List(ListOpts),
    /// Extract archives safely, one entry in flight
    #[command(long_about = unpack::LONG_ABOUT)]
    Unpack(UnpackOpts),
    /// Remove, move, insert or rename pages and drop junk, without ever risking the original
    #[command(long_about = edit::LONG_ABOUT)]
    Edit(EditOpts),
    /// Scanned PDFs to CBZ: page images copied as they are, other pages rendered
    #[command(name = "from-pdf", long_about = from_pdf::LONG_ABOUT)]
    FromPdf(FromPdfOpts),
    /// RAR (.cbr) and 7z (.cb7) comic archives to CBZ, one entry in flight
    #[command(long_about = convert::LONG_ABOUT)]
    Convert(ConvertOpts),
    /// A thumbnail of an archive's first page (or --page N), in bounded memory
    #[command(long_about = cover::LONG_ABOUT)]
    Cover(CoverOpts),
}

/// `pack` options.
#[derive(Debug, Args)]
pub struct PackOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Keep the pages' names (relative to their common directory) instead of renaming
    /// them zero-padded (001.jpg, 002.jpg...) in natural order
    #[arg(long)]
    pub keep_names: bool,
    /// Do not generate a ComicInfo.xml when the pages come without one
    #[arg(long)]
    pub no_comic_info: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    // Directories are packed side by side (-j); pages packed into one archive
    // (`-o FILE.cbz`) are read in input order, one at a time.
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `list` options.
#[derive(Debug, Args)]
pub struct ListOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Do not read the first bytes of image entries for their format and dimensions
    #[arg(long)]
    pub no_images: bool,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `unpack` options.
#[derive(Debug, Args)]
pub struct UnpackOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// One record per extracted page (path = the page file) instead of one per archive,
    /// for `unpack --emit-records | <stage> | pack`
    #[arg(long)]
    pub emit_records: bool,
    /// Most entries an archive may have (default: what the budget allows, at most 1000000)
    #[arg(long, value_name = "N")]
    pub max_entries: Option<u64>,
    /// Largest expanded size of one entry (default: the total limit)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_entry_size: Option<u64>,
    /// Largest expanded size of an archive (default: 90% of the free disk space)
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_total_size: Option<u64>,
    /// Largest expansion ratio of an entry over 1 MiB (uncompressed / compressed)
    #[arg(long, value_name = "RATIO", default_value_t = membudget::probe::zip::BOMB_RATIO)]
    pub max_ratio: u64,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `edit` options.
#[derive(Debug, Args)]
pub struct EditOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Remove pages: 1-based numbers, ranges (3-5) or globs on names (*credits*),
    /// comma-separated; may be repeated
    #[arg(long, value_name = "SPEC")]
    pub remove: Vec<String>,
    /// Move page FROM to position TO (1-based, counted after removals); may be repeated
    #[arg(long = "move", value_name = "FROM:TO", value_parser = edit::parse_move)]
    pub moves: Vec<(usize, usize)>,
    /// Insert a white page (the size of its neighbour) so that it becomes page N
    /// (counted after removals and moves); may be repeated
    #[arg(long, value_name = "N")]
    pub insert_blank: Vec<usize>,
    /// Drop junk entries (.nfo, .sfv, .db, .DS_Store, Thumbs.db, desktop.ini, __MACOSX/);
    /// ComicInfo.xml is always kept
    #[arg(long)]
    pub drop_junk: bool,
    /// Rename pages zero-padded (001.jpg...) in natural order
    #[arg(long)]
    pub rename: bool,
    /// Say what would be done, write nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,
}

/// How rendered pages are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderFormat {
    /// JPEG, quality 92
    Jpeg,
    /// Lossless PNG
    Png,
}

/// `from-pdf` options.
#[derive(Debug, Args)]
pub struct FromPdfOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Resolution of rendered pages, in dots per inch
    #[arg(long, value_name = "DPI", default_value_t = 300, value_parser = clap::value_parser!(u32).range(10..=2400))]
    pub dpi: u32,
    /// Encoding of rendered pages
    #[arg(long, value_enum, default_value_t = RenderFormat::Jpeg)]
    pub render_format: RenderFormat,
    /// Render every page, even those that are one embedded image
    #[arg(long)]
    pub render_all: bool,
    /// Delete the PDF once its archive is written and verified
    #[arg(long)]
    pub delete_source: bool,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `convert` options.
#[derive(Debug, Args)]
pub struct ConvertOpts {
    #[command(flatten)]
    pub input: InputArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// `cover` options.
#[derive(Debug, Args)]
pub struct CoverOpts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Longest side of the thumbnail in pixels
    #[arg(long, value_name = "N", default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub size: u32,
    /// The page to use (1-based, in natural order)
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub page: u32,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub processing: ProcessingArgs,
}

/// Sizes as `--memory-limit` takes them (bytes, KiB, MB...), without percentages.
fn parse_size(s: &str) -> Result<u64, String> {
    let sys = membudget::system::SystemInfo::fixed(u64::MAX / 4, None);
    if s.trim_end().ends_with('%') {
        return Err("a size in bytes (512MiB, 2G), not a share".into());
    }
    membudget::Budget::from_arg(Some(s), &sys)
        .map(|b| b.bytes)
        .map_err(|e| e.message)
}

/// The clap command (used by `main`, man pages and completions).
pub fn command() -> Command {
    membudget::cli::tool_command::<Cli>(
        NAME,
        env!("CARGO_PKG_VERSION"),
        "Comic archives (CBZ) packed, unpacked, listed and edited in constant memory; scanned PDFs to CBZ",
        "Every subcommand reads paths or NDJSON manifest records (arguments, `-` or \
             stdin) and writes one NDJSON record per input (list and unpack --emit-records: \
             one per entry or page) with a `cbz-stream` section. Archives are read and \
             written one entry at a time through a fixed buffer, so memory does not grow \
             with their size. Outputs are written under a temporary name and renamed into \
             place once verified; existing outputs are skipped unless --force; a bad \
             input gets an error record and the run goes on.",
    )
}

/// Run on parsed arguments.
pub fn run(m: &ArgMatches) -> Result<Status> {
    let cli = Cli::from_arg_matches(m)?;
    let log = &cli.log;
    match &cli.cmd {
        Cmd::Pack(o) => pack::run(o, log),
        Cmd::List(o) => list::run(o, log),
        Cmd::Unpack(o) => unpack::run(o, log),
        Cmd::Edit(o) => edit::run(o, log),
        Cmd::FromPdf(o) => from_pdf::run(o, log),
        Cmd::Convert(o) => convert::run(o, log),
        Cmd::Cover(o) => cover::run(o, log),
    }
}

/// Whether `-o` names an archive file (`x.cbz`, `x.zip`) rather than a directory.
pub fn names_file(o: &OutputArgs, exts: &[&str]) -> bool {
    o.output_dir
        .as_ref()
        .and_then(|p| p.extension())
        .and_then(|e| e.to_str())
        .is_some_and(|e| exts.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// The output path for `input`: the file `-o` names (`-o out.cbz`), else `name` beside the
/// input or mirrored under `-o DIR`.
pub fn output_for(
    o: &OutputArgs,
    input: &Path,
    name: impl AsRef<std::ffi::OsStr>,
    exts: &[&str],
) -> Result<PathBuf, Error> {
    match &o.output_dir {
        Some(f) if names_file(o, exts) => Ok(f.clone()),
        _ => o.output_path(input, name),
    }
}

/// The archive made of `input`: `<stem>.cbz` beside it or mirrored under `-o DIR`, or
/// the archive `-o` names.
pub fn cbz_for(o: &OutputArgs, input: &Path) -> Result<PathBuf, Error> {
    output_for(
        o,
        input,
        membudget::cli::stem_name(input, "out", ".cbz"),
        &["cbz", "zip"],
    )
}

/// The input's file stem (`a` for `dir/a.cbz`), byte for byte.
pub fn stem(p: &Path) -> std::ffi::OsString {
    membudget::cli::stem_name(p, "out", "")
}

/// Claim `dest` for writing ([`AtomicFile::claim`]): `None`, with the record's status
/// `skipped` and the reason, when another live run is writing it, or finished it while
/// this one got ready (two runs into one directory share the work instead of failing).
pub fn claim(
    record: &mut Record,
    o: &OutputArgs,
    dest: &Path,
) -> Result<Option<AtomicFile>, Error> {
    let reason = match AtomicFile::claim(dest)? {
        Err(busy) => busy,
        Ok(_) if dest.exists() && !o.force => "output exists (use --force to overwrite)".into(),
        Ok(a) => return Ok(Some(a)),
    };
    record.set_in(NAME, "status", "skipped");
    record.set_in(NAME, "reason", reason);
    Ok(None)
}

/// Claim `dest` as the output of the record's input, in input order ([`Job::claim_output`]:
/// of two inputs with one output name the first keeps it, the second gets an error
/// record; none is written over an input of the run), then [`proceed`].
pub fn begin(
    record: &mut Record,
    job: &mut Job,
    o: &OutputArgs,
    dest: &Path,
) -> Result<bool, Error> {
    record.set_in(NAME, "output", dest.to_string_lossy().into_owned());
    job.claim_output(&record.path(), dest)?;
    Ok(proceed(record, o, dest))
}

/// Set the record's status to `skipped` when `dest` exists and `--force` was not given,
/// or `dry_run` under `--dry-run`; returns whether the work should go on.
pub fn proceed(record: &mut Record, o: &OutputArgs, dest: &Path) -> bool {
    record.set_in(NAME, "output", dest.to_string_lossy().into_owned());
    if dest.exists() && !o.force {
        record.set_in(NAME, "status", "skipped");
        return false;
    }
    if o.dry_run {
        record.set_in(NAME, "status", "dry_run");
        return false;
    }
    true
}
