//! `thumbnail`: shrink-on-load thumbnails through `raster::thumbnail` (the workspace's one
//! downscaler, which `cbz-stream cover` uses too): the input is opened at the cheapest
//! reduction still at least the thumbnail's size, read once top to bottom, box-shrunk to
//! about twice the output and finished by Lanczos3.

use crate::NAME;
use anyhow::Result;
use clap::Args;
use membudget::cli::{AtomicFile, InputArgs, LogArgs, OutputArgs, Status};
use membudget::driver::{Job, ProcessingArgs};
use membudget::{Error, Record};
use raster::thumbnail;
use std::io::{BufWriter, Write};

/// `--help` text.
pub const LONG_ABOUT: &str = "Writes a thumbnail of each image whose longest side is \
--size pixels (--fit, the default) or that fills --size x --size, cropped around the \
centre (--fill); never enlarged. Output: `<name>.thumb.jpg` (or .png with --format png) \
beside the input, or mirrored under -o DIR.\n\n\
Shrink-on-load, as vipsthumbnail does and with its size arithmetic (sizes equal \
`vipsthumbnail -s N`, or with --fill `--smartcrop centre`): a JPEG is decoded by \
scanlines at the largest DCT reduction (1/2, 1/4 or 1/8, by libjpeg-turbo) that still \
leaves a factor of two to the final resampling (at 1/8, a gray or YCbCr Huffman JPEG \
is read from its DC terms alone, skipping the AC coefficients faster than libjpeg \
decodes them, and a progressive one without decoding its AC scans at all: luma equal to \
libjpeg's 1/8 decode, subsampled chroma from each block's DC where libjpeg upsamples); a TIFF is read from its smallest reduced \
page or SubIFD (pyramids) still at least N, else its first page by bands; a JPEG 2000 is \
decoded at the coarsest resolution level still at least N; a PNG is read row by row (interlaced PNGs are refused). That image is box-shrunk \
by an integer factor to about twice the output as it streams, then resampled with \
Lanczos3. Memory: one source row (for a JPEG, one row of 8x8 blocks at full width; a \
progressive JPEG read at 1/2 or 1/4 holds all its coefficients and is refused above \
256 MiB of them, at 1/8 only its DC terms, 2 bytes a block of 8x8 pixels; a \
JPEG 2000 level is decoded whole, refused above 256 MiB) plus \
at most 16 times the thumbnail's pixels.\n\n\
Colour: samples are converted to 8 bits (16-bit sources rounded), gray stays gray, alpha \
is kept in PNG output and dropped from JPEG output. An embedded ICC profile (JPEG APP2, \
PNG iCCP, TIFF tag 34675) is passed through untouched into the thumbnail: pixels are not \
colour-converted (vipsthumbnail converts to sRGB unless told otherwise). JPEG 2000 \
profiles are not carried. CMYK, float and signed inputs are refused.\n\n\
Record: a `tile-enhance` section with op \"thumbnail\", output, status, width, height, \
source ([width, height] of the input), loaded (what was decoded: \"jpeg 1/8\", or \"jpeg \
1/8 dc\" from the DC terms; \"tiff page 3\", \"tiff subifd 2\", \"jp2 reduce 3\", \"png\"), icc (bytes carried), seconds, \
peak_rss. A file that cannot be read gets an error record and no output.";

/// Output encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// Baseline JPEG at --quality
    Jpeg,
    /// PNG (keeps alpha)
    Png,
}

/// `thumbnail` options.
#[derive(Debug, Args)]
pub struct Opts {
    #[command(flatten)]
    pub input: InputArgs,
    /// Thumbnail size in pixels: the longest side (--fit) or the square's side (--fill)
    #[arg(short = 's', long, value_name = "N", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..=16384))]
    pub size: u32,
    /// Fit the whole image within N x N (the default)
    #[arg(long, conflicts_with = "fill")]
    pub fit: bool,
    /// Fill N x N: scale the shortest side to N and crop the rest around the centre
    #[arg(long)]
    pub fill: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = OutFormat::Jpeg)]
    pub format: OutFormat,
    /// JPEG quality (1-100)
    #[arg(long, value_name = "Q", default_value_t = 85,
          value_parser = clap::value_parser!(u8).range(1..=100))]
    pub quality: u8,
    #[command(flatten)]
    pub processing: ProcessingArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// Run `thumbnail`.
pub fn run(o: &Opts, log: &LogArgs) -> Result<Status> {
    // Several images at once when there are several: one thread each, and no model of
    // the least need (a thumbnail's memory is bounded by its reader, see --help), so the
    // inputs in flight share the budget evenly.
    o.processing.for_each_record(
        NAME,
        &o.input,
        log,
        |_| None,
        |record, job, _room| one(o, job, record),
    )
}

fn one(o: &Opts, job: &mut Job, record: &mut Record) -> Result<(), Error> {
    let input = record.path();
    record.set_in(NAME, "op", "thumbnail");
    let ext = match o.format {
        OutFormat::Jpeg => "jpg",
        OutFormat::Png => "png",
    };
    let name = membudget::cli::stem_name(&input, "out", &format!(".thumb.{ext}"));
    let dest = o.output.output_path(&input, &name)?;
    record.set_path_in(NAME, "output", &dest);
    job.claim_output(&input, &dest)?;
    if dest.exists() && !o.output.force {
        record.set_in(NAME, "status", "skipped");
        record.set_in(NAME, "reason", "output exists (use --force to overwrite)");
        return Ok(());
    }
    if o.output.dry_run {
        record.set_in(NAME, "status", "dry_run");
        return Ok(());
    }
    let size = thumbnail::Size {
        side: o.size,
        fill: o.fill,
    };
    let mut src = thumbnail::open(&input, size)?;
    let thumb = thumbnail::make(&mut src, size)?;
    let mut out = match AtomicFile::claim(&dest)? {
        Ok(f) => f,
        Err(reason) => {
            record.set_in(NAME, "status", "skipped");
            record.set_in(NAME, "reason", reason);
            return Ok(());
        }
    };
    {
        let mut w = BufWriter::new(out.file());
        match o.format {
            OutFormat::Jpeg => {
                thumbnail::encode_jpeg(&thumb, o.quality, src.icc.as_deref(), &mut w)?
            }
            OutFormat::Png => thumbnail::encode_png(&thumb, src.icc.as_deref(), &mut w)?,
        }
        w.flush()?;
    }
    out.commit()?;
    record.set_in(NAME, "status", "ok");
    record.set_in(NAME, "width", thumb.width);
    record.set_in(NAME, "height", thumb.height);
    record.set_in(NAME, "source", serde_json::json!([src.full.0, src.full.1]));
    record.set_in(NAME, "loaded", src.loaded.clone());
    record.set_in(NAME, "icc", src.icc.as_ref().map_or(0, Vec::len));
    Ok(())
}
