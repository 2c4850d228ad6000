//! FITS frames: CFA split, normalisation and stacking, row block by row block (see
//! [`cfa`], [`normalize`], [`stack`]); FITS I/O is `raster::fits`.
//!
//! A run with `--split-cfa` or `--normalize` (and no `--stack`) goes through the record
//! driver: one record per input, outputs beside it or under `--output-dir`
//! (`CFA0_<name>.fits` ..., `RGB_<name>.fits`, `norm_<name>.fits`). `--stack` reads every
//! input first (frames from arguments or NDJSON records), checks them all (an image HDU,
//! one size, no cube) before anything is written, and writes one float32 file and one
//! record listing its inputs.
//!
//! Cubes (NAXIS3 and up): one plane is one frame. `--plane N` reads plane N of every
//! input (0-based, the axes beyond NAXIS2 flattened as numpy does: astropy's
//! `data.reshape(-1, NAXIS2, NAXIS1)[N]`); outputs are 2-D and carry a HISTORY card naming
//! the plane. Without `--plane` a cube is refused before anything is written.

pub mod cfa;
pub mod normalize;
pub mod stack;

use clap::Args;
use membudget::cli::{
    self, AtomicFile, BudgetArgs, Input, InputArgs, LogArgs, Output, OutputArgs, Status,
};
use membudget::cost::fits_stack::FitsStack;
use membudget::cost::Summary;
use membudget::driver::{self, Job, ProcessingArgs};
use membudget::probe::{Format, ImageSummary, Layout, SampleFormat};
use membudget::system::SystemInfo;
use membudget::{monitor, plan, Budget, Error, ErrorKind, Record};
use raster::fits::{Algorithm, Compression, FitsReader, FitsWriter, HduSel};
use serde_json::json;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::NAME;

/// FITS options (flattened into strip-convert's command line).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "FITS frames")]
pub struct FitsArgs {
    /// FITS: the HDU to read, a number (the primary HDU is 0), an EXTNAME, or EXTNAME,EXTVER
    /// (astropy's ('SCI', 2)); default the first HDU holding an image
    #[arg(long, value_name = "N|NAME[,VER]", value_parser = HduSel::parse)]
    pub hdu: Option<HduSel>,
    /// FITS: read plane N of a cube as the frame (0-based, the axes past NAXIS2 flattened:
    /// astropy's data.reshape(-1, NAXIS2, NAXIS1)[N]); without it a cube is refused
    #[arg(long, value_name = "N")]
    pub plane: Option<u64>,
    /// FITS: split each CFA (Bayer) frame into CFA0_..CFA3_<name>.fits (even/odd rows and
    /// columns, bit-exact); the pattern names their FILTER; auto reads BAYERPAT/ROWORDER
    #[arg(long, value_name = "PATTERN|auto", value_parser = cfa::parse_sel)]
    pub split_cfa: Option<cfa::CfaSel>,
    /// FITS: with --split-cfa, write RGB_<name>.fits (float32 planes R, (G1+G2)/2, B) instead
    #[arg(long, requires = "split_cfa")]
    pub cfa_rgb: bool,
    /// FITS: normalise each frame to the reference by median (L) and MAD (S): additive
    /// x-(Li-Lr), multiplicative x*Lr/Li, addscale (Sr/Si)(x-Li)+Lr, mulscale
    /// x*(Sr/Si)(Lr/Li); writes norm_<name>.fits, or with --stack normalises on the fly
    #[arg(long, value_enum, value_name = "METHOD")]
    pub normalize: Option<normalize::Method>,
    /// FITS: the normalisation reference frame (default: the first input)
    #[arg(long, value_name = "FILE", requires = "normalize")]
    pub reference: Option<PathBuf>,
    /// FITS: stack every input into one float32 frame (--output), row block by row block
    #[arg(long, value_enum, value_name = "METHOD", requires = "stack_output")]
    pub stack: Option<stack::Method>,
    /// FITS: the stacked frame's path (with --stack)
    #[arg(long = "output", value_name = "FILE.fits", requires = "stack")]
    pub stack_output: Option<PathBuf>,
    /// FITS: sigma-clip/winsorized: reject values below centre - N sigma
    #[arg(long, value_name = "N", default_value_t = 3.0)]
    pub sigma_low: f64,
    /// FITS: sigma-clip/winsorized: reject values above centre + N sigma
    #[arg(long, value_name = "N", default_value_t = 3.0)]
    pub sigma_high: f64,
    /// FITS: minmax: the N lowest values of each pixel are rejected
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub reject_low: usize,
    /// FITS: minmax: the N highest values of each pixel are rejected
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub reject_high: usize,
    /// FITS: with --stack (not median), weight each frame by 1/sigma^2 in the final mean,
    /// sigma its noise: 1.4826 x its MAD, times the normalisation factor if any
    #[arg(long, requires = "stack")]
    pub weighted: bool,
    /// FITS: with --stack, also write the per-pixel count of rejected values here
    #[arg(long, value_name = "FILE", requires = "stack")]
    pub rejection_map: Option<PathBuf>,
    /// FITS: tile-compress the FITS outputs, one row a tile: auto (RICE_1 for integer
    /// images, GZIP_2 for floating-point ones), rice, gzip or gzip2; lossless unless
    /// --quantize is given
    #[arg(long, value_enum, value_name = "ALGO")]
    pub compress: Option<CompressArg>,
    /// FITS: with --compress, quantise floating-point outputs (lossy, as fpack -q Q):
    /// steps of a tile's noise sigma / Q, or of -Q when Q is negative, dithered; auto
    /// then means RICE_1
    #[arg(long, value_name = "Q", requires = "compress", allow_negative_numbers = true,
          value_parser = parse_quantize)]
    pub quantize: Option<f32>,
}

/// `--compress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CompressArg {
    /// RICE_1 for integer images, GZIP_2 for floating-point ones (RICE_1 with --quantize)
    Auto,
    /// RICE_1 (floating-point images only with --quantize)
    Rice,
    /// GZIP_1
    Gzip,
    /// GZIP_2 (bytes shuffled by significance)
    Gzip2,
}

fn parse_quantize(s: &str) -> Result<f32, String> {
    match s.trim().parse::<f32>() {
        Ok(q) if q.is_finite() && q != 0.0 => Ok(q),
        Ok(_) => Err("must be finite and not 0 (leave --quantize out for lossless)".into()),
        Err(e) => Err(e.to_string()),
    }
}

/// The compression of an output image of `bitpix`, if any.
fn compression(a: &FitsArgs, bitpix: i32) -> Option<Compression> {
    let quantize = if bitpix < 0 { a.quantize } else { None };
    let algorithm = match a.compress? {
        CompressArg::Auto if bitpix > 0 || quantize.is_some() => Algorithm::Rice,
        CompressArg::Auto => Algorithm::Gzip2,
        CompressArg::Rice => Algorithm::Rice,
        CompressArg::Gzip => Algorithm::Gzip,
        CompressArg::Gzip2 => Algorithm::Gzip2,
    };
    Some(Compression {
        algorithm,
        quantize,
    })
}

/// The record's note of how an output of `bitpix` was compressed.
fn compression_json(c: Option<Compression>, bitpix: i32) -> serde_json::Value {
    match c {
        None => serde_json::Value::Null,
        Some(c) => json!({"algorithm": c.algorithm.as_str(), "quantize": c.quantize,
                          "lossless": c.lossless(bitpix)}),
    }
}

/// Whether `path` starts like a FITS file (`SIMPLE  =`).
pub fn is_fits(path: &Path) -> bool {
    let mut head = [0u8; 9];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok_and(|_| &head == b"SIMPLE  =")
}

/// The error of a FITS input met without a FITS operation.
pub fn no_operation() -> Error {
    Error::unsupported(
        "FITS input: give --split-cfa, --normalize or --stack (FITS to JP2 is not done)",
    )
}

/// Run the FITS operations, if any was asked for (`None`: the TIFF run goes on).
pub fn run(
    a: &FitsArgs,
    input: &InputArgs,
    processing: &ProcessingArgs,
    output: &OutputArgs,
    log: &LogArgs,
) -> anyhow::Result<Option<Status>> {
    let budget = &processing.budget;
    if a.stack.is_none() && a.split_cfa.is_none() && a.normalize.is_none() {
        return Ok(None);
    }
    if !(a.sigma_low > 0.0 && a.sigma_high > 0.0) {
        anyhow::bail!("--sigma-low and --sigma-high must be positive");
    }
    let float_out = a.stack.is_some() || a.cfa_rgb || a.split_cfa.is_none();
    if float_out && a.compress == Some(CompressArg::Rice) && a.quantize.is_none() {
        anyhow::bail!(
            "--compress rice: the output is floating point, which RICE_1 stores only \
             quantised (lossy); give --quantize Q, or --compress gzip2 (lossless)"
        );
    }
    let sys = SystemInfo::probe();
    let b = budget.budget(&sys)?;
    let jobs = budget.jobs(&sys);
    let ctx = Ctx {
        a,
        output,
        budget: b.bytes,
        jobs,
    };
    if a.stack.is_some() {
        if a.split_cfa.is_some() {
            anyhow::bail!("--stack and --split-cfa: split first, then stack each plane");
        }
        return ctx.stack(input, budget).map(Some);
    }
    if a.split_cfa.is_some() {
        // Frames side by side (the batch driver): while one frame's outputs are synced
        // to disk before their rename, the others are split.
        return processing
            .for_each_record(
                NAME,
                input,
                log,
                |_| None,
                |r, job, room| {
                    let c = Ctx {
                        budget: room.budget,
                        jobs: room.threads,
                        ..ctx
                    };
                    c.split_input(r, job)
                },
            )
            .map(Some);
    }
    let mut reference: Option<(String, normalize::Stats)> = None;
    driver::for_each_record(NAME, input, log, |r, _job| {
        let b = budget.planned(r).map(|b| b.bytes).unwrap_or(ctx.budget);
        let c = Ctx { budget: b, ..ctx };
        c.per_input(r, &mut reference)
    })
    .map(Some)
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    a: &'a FitsArgs,
    output: &'a OutputArgs,
    budget: u64,
    jobs: usize,
}

fn sel(a: &FitsArgs) -> HduSel {
    a.hdu.clone().unwrap_or_default()
}

fn open_frame(a: &FitsArgs, path: &Path) -> Result<FitsReader, Error> {
    if !is_fits(path) {
        return Err(if path.exists() {
            Error::unsupported("not a FITS file (no SIMPLE card)")
        } else {
            Error::new(ErrorKind::NotFound, "no such file")
        });
    }
    let mut r = FitsReader::open(path, &sel(a))?;
    let i = r.info().clone();
    match a.plane {
        Some(p) if p >= i.planes => {
            return Err(Error::unsupported(format!(
                "--plane {p}: HDU {} has {} plane(s), numbered from 0",
                i.hdu, i.planes
            )))
        }
        Some(p) => r.select_plane(p)?,
        None if i.planes > 1 => {
            return Err(Error::unsupported(format!(
                "HDU {} is a cube of {} planes ({}x{}): frames are 2-D images; give --plane N \
                 to read plane N (0-based) of it",
                i.hdu, i.planes, i.width, i.height
            )))
        }
        None => {}
    }
    Ok(r)
}

/// The header cards an output of `r`'s frame copies: the frame's, and for a plane of a
/// cube a HISTORY card naming it.
fn frame_cards(a: &FitsArgs, r: &FitsReader) -> Result<Vec<String>, Error> {
    let mut cards = r.header_cards()?;
    let i = r.info();
    if let Some(p) = a.plane.filter(|_| i.planes > 1) {
        let text = format!(
            "HISTORY strip-convert: plane {p} (from 0) of a {}-plane cube",
            i.planes
        );
        cards.push(format!("{text:<80.80}"));
    }
    Ok(cards)
}

/// Read rows `y .. y + m` of every frame into `block` (the first `len` values of each),
/// the frames split over `threads` threads (CFITSIO is reentrant; each thread reads its
/// own files).
fn read_block(
    frames: &mut [(Record, FitsReader)],
    block: &mut [Vec<f32>],
    y: u32,
    m: u32,
    len: usize,
    threads: usize,
) -> Result<(), Error> {
    let per = frames.len().div_ceil(threads.max(1)).max(1);
    std::thread::scope(|s| {
        let jobs: Vec<_> = frames
            .chunks_mut(per)
            .zip(block.chunks_mut(per))
            .map(|(fs, bs)| {
                s.spawn(move || -> Result<(), Error> {
                    for ((_, f), b) in fs.iter_mut().zip(bs) {
                        f.read_rows_f32(y, m, &mut b[..len])?;
                    }
                    Ok(())
                })
            })
            .collect();
        jobs.into_iter().try_for_each(|j| {
            j.join().unwrap_or_else(|_| {
                Err(Error::new(ErrorKind::Internal, "a reader thread panicked"))
            })
        })
    })
}

/// Rows per read for a pass over one frame (`bytes` a pixel in flight): at most a
/// quarter of the budget and no more than [`PASS_BYTES`], at least 2 (an even number).
fn pass_rows(budget: u64, width: u32, bytes: usize) -> u32 {
    let row = (u64::from(width) * bytes as u64).max(1);
    (((budget / 4).min(PASS_BYTES) / row).clamp(2, 4096) as u32) & !1
}

/// Bytes in flight for a pass over one frame: as fast as larger blocks (they stay in the
/// CPU caches and need no fresh pages), so a larger budget is not spent. A CFA split of
/// 6000x4000 uint16 frames in blocks of the whole frame peaked at 113 MB.
const PASS_BYTES: u64 = 1 << 20;

/// `<prefix><stem>.fits` for the frame at `path` (its `.fits`, `.fit` or `.fts` dropped).
fn stem_fits(prefix: &str, path: &Path) -> std::ffi::OsString {
    // Byte for byte: a name that is not UTF-8 (Latin-1 from an old camera PC) keeps its
    // bytes rather than a U+FFFD that two names could share.
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    let n = path
        .file_name()
        .map_or(&b"frame.fits"[..], |n| n.as_bytes());
    let stem = [&b".fits"[..], b".fit", b".fts"]
        .iter()
        .find_map(|s| n.strip_suffix(*s))
        .unwrap_or(n);
    let mut v = prefix.as_bytes().to_vec();
    v.extend_from_slice(stem);
    v.extend_from_slice(b".fits");
    std::ffi::OsString::from_vec(v)
}

/// Claim `dest`, create its temporary and fill it (the caller commits).
fn write_atomic(
    dest: &Path,
    fill: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<AtomicFile, Error> {
    let file = AtomicFile::create(dest)
        .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", dest.display())))?;
    fill(file.temp_path())?;
    Ok(file)
}

/// Bytes of input between two starts of the outputs' writeback in a CFA split.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// Rename into place (AtomicFile syncs the file CFITSIO wrote at the temporary path),
/// every file's writeback started before the first sync waits, so that they overlap.
fn commit(files: Vec<AtomicFile>) -> Result<(), Error> {
    if files.len() > 1 {
        for f in &files {
            let _ = f.start_writeback();
        }
    }
    for f in files {
        f.commit()
            .map_err(|e| Error::new(ErrorKind::Io, format!("rename: {e}")))?;
    }
    Ok(())
}

impl Ctx<'_> {
    /// Open an input's frame and note what it is in the record.
    fn open_input(&self, r: &mut Record) -> Result<(PathBuf, FitsReader), Error> {
        let path = r.path();
        let reader = open_frame(self.a, &path)?;
        let info = reader.info();
        r.set_in(
            NAME,
            "fits",
            json!({"hdu": info.hdu, "width": info.width, "height": info.height,
                   "planes": info.planes, "plane": self.a.plane,
                   "bitpix": info.bitpix, "bzero": info.bzero, "bscale": info.bscale}),
        );
        Ok((path, reader))
    }

    /// `--split-cfa` of one input.
    fn split_input(&self, r: &mut Record, job: &mut Job) -> Result<(), Error> {
        let (path, mut reader) = self.open_input(r)?;
        let c = self.a.split_cfa.expect("--split-cfa");
        self.split(&path, &mut reader, c, r, job)
    }

    fn per_input(
        &self,
        r: &mut Record,
        reference: &mut Option<(String, normalize::Stats)>,
    ) -> Result<(), Error> {
        let (path, mut reader) = self.open_input(r)?;
        let info = reader.info().clone();
        let m = self.a.normalize.expect("an operation was asked");
        let scale = matches!(m, normalize::Method::Addscale | normalize::Method::Mulscale);
        let st = self.frame_stats(&mut reader, scale)?;
        if reference.is_none() {
            *reference = Some(match &self.a.reference {
                Some(p) => {
                    let mut rr = open_frame(self.a, p)?;
                    (
                        p.to_string_lossy().into_owned(),
                        self.frame_stats(&mut rr, scale)?,
                    )
                }
                None => (path.to_string_lossy().into_owned(), st),
            });
        }
        let (rpath, rs) = reference.clone().expect("set above");
        let (ka, kb) = normalize::coefficients(m, st, rs)?;
        r.set_in(
            NAME,
            "normalize",
            json!({"method": m.as_str(), "location": st.location, "scale": st.scale,
                   "a": ka, "b": kb,
                   "reference": {"path": rpath, "location": rs.location, "scale": rs.scale}}),
        );
        let dest = self.output.output_path(&path, stem_fits("norm_", &path))?;
        r.set_in(NAME, "output", json!(dest.to_string_lossy()));
        if self.skip(&dest, r) {
            return Ok(());
        }
        let cards = frame_cards(self.a, &reader)?;
        let rows = pass_rows(self.budget, info.width, 16);
        let comp = compression(self.a, -32);
        r.set_in(NAME, "compression", compression_json(comp, -32));
        let file = write_atomic(&dest, |tmp| {
            let mut w = FitsWriter::create(tmp, info.width, info.height, 1, -32, comp)?;
            w.copy_cards(&cards)?;
            w.history(&format!(
                "strip-convert: {} normalisation to {rpath}: x' = {ka} x + {kb}",
                m.as_str()
            ))?;
            let mut buf = vec![0f64; info.width as usize * rows as usize];
            let mut y = 0;
            while y < info.height {
                let n = rows.min(info.height - y);
                let b = &mut buf[..info.width as usize * n as usize];
                reader.read_rows_f64(y, n, b)?;
                for v in b.iter_mut() {
                    *v = ka * *v + kb;
                }
                w.write_rows_f64(0, y, b)?;
                y += n;
            }
            w.finish()
        })?;
        commit(vec![file])?;
        r.set_in(NAME, "status", json!("ok"));
        Ok(())
    }

    /// Existing output without --force, or --dry-run: say so and write nothing.
    fn skip(&self, dest: &Path, r: &mut Record) -> bool {
        if self.output.dry_run {
            r.set_in(NAME, "status", json!("dry_run"));
            return true;
        }
        if dest.exists() && !self.output.force {
            r.set_in(NAME, "status", json!("skipped"));
            return true;
        }
        false
    }

    /// A frame's median and, if `scale`, its MAD, read in blocks of at most 4 MiB (a
    /// share of the budget per thread).
    fn frame_stats(&self, reader: &mut FitsReader, scale: bool) -> Result<normalize::Stats, Error> {
        let threads = self.jobs.max(1) as u64;
        let row = u64::from(reader.info().width).max(1) * 8;
        let rows = ((self.budget / 8 / threads).min(4 << 20) / row).clamp(1, 1 << 20) as u32;
        normalize::frame_stats(&mut normalize::FrameValues { reader, rows }, scale)
    }

    /// Every frame's stats, the frames split over the worker threads.
    fn all_stats(
        &self,
        frames: &mut [(Record, FitsReader)],
        scale: bool,
    ) -> Result<Vec<normalize::Stats>, Error> {
        let count = frames.len();
        let per = count.div_ceil(self.jobs.max(1)).max(1);
        std::thread::scope(|s| {
            let jobs: Vec<_> = frames
                .chunks_mut(per)
                .map(|fs| {
                    s.spawn(move || {
                        fs.iter_mut()
                            .map(|(r, f)| {
                                self.frame_stats(f, scale).map_err(|e| {
                                    Error::new(e.kind, format!("{}: {}", r.path_str(), e.message))
                                })
                            })
                            .collect::<Result<Vec<_>, Error>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(count);
            for j in jobs {
                out.extend(j.join().map_err(|_| {
                    Error::new(ErrorKind::Internal, "a statistics thread panicked")
                })??);
            }
            Ok(out)
        })
    }

    fn split(
        &self,
        path: &Path,
        reader: &mut FitsReader,
        c: cfa::CfaSel,
        r: &mut Record,
        job: &mut Job,
    ) -> Result<(), Error> {
        let info = reader.info().clone();
        if info.width < 2 || info.height < 2 {
            return Err(Error::unsupported("a CFA frame needs at least 2x2 pixels"));
        }
        let pattern = match c {
            cfa::CfaSel::Fixed(p) => p,
            cfa::CfaSel::Auto => cfa::from_header(
                reader.key_str("BAYERPAT")?.as_deref(),
                reader.key_str("ROWORDER")?.as_deref(),
                reader.key_f64("XBAYROFF")?,
                reader.key_f64("YBAYROFF")?,
                info.height,
            )
            .map_err(Error::unsupported)?,
        };
        let (w2, h2) = (info.width / 2, info.height / 2);
        let dests: Vec<PathBuf> = if self.a.cfa_rgb {
            vec![self.output.output_path(path, stem_fits("RGB_", path))?]
        } else {
            (0..4)
                .map(|k| {
                    self.output
                        .output_path(path, stem_fits(&format!("CFA{k}_"), path))
                })
                .collect::<Result<_, _>>()?
        };
        r.set_in(NAME, "pattern", json!(pattern.as_str()));
        r.set_in(
            NAME,
            "outputs",
            json!(dests
                .iter()
                .map(|d| d.to_string_lossy())
                .collect::<Vec<_>>()),
        );
        // Never over an input of the run, never an earlier input's output (in input
        // order, as frames run side by side).
        for claim in job.claim_outputs(path, &dests)? {
            claim?;
        }
        if self.output.dry_run {
            r.set_in(NAME, "status", json!("dry_run"));
            return Ok(());
        }
        if dests.iter().all(|d| d.exists()) && !self.output.force {
            r.set_in(NAME, "status", json!("skipped"));
            return Ok(());
        }
        let cards = frame_cards(self.a, reader)?;
        let out_bitpix = if self.a.cfa_rgb { -32 } else { info.bitpix };
        let comp = compression(self.a, out_bitpix);
        r.set_in(NAME, "compression", compression_json(comp, out_bitpix));
        let sb = if self.a.cfa_rgb { 8 } else { info.raw_bytes() };
        // Row pairs per block: a quarter of the budget for the block and its four planes.
        let rows = pass_rows(self.budget, info.width, sb * 2);
        let mut temps = Vec::new();
        let mut writers = Vec::new();
        for (k, d) in dests.iter().enumerate() {
            let t = AtomicFile::create(d)
                .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", d.display())))?;
            let mut w = if self.a.cfa_rgb {
                FitsWriter::create(t.temp_path(), w2, h2, 3, -32, comp)?
            } else {
                FitsWriter::create(t.temp_path(), w2, h2, 1, info.bitpix, comp)?
            };
            w.copy_cards(&cards)?;
            for key in ["BAYERPAT", "XBAYROFF", "YBAYROFF"] {
                w.delete_key(key)?;
            }
            if self.a.cfa_rgb {
                w.history(&format!(
                    "strip-convert: CFA {} to RGB planes R, (G1+G2)/2, B (half size)",
                    pattern.as_str()
                ))?;
            } else {
                w.raw_scaling(info.bzero, info.bscale)?;
                let colour = cfa::plane_colour(pattern, k) as char;
                let (dy, dx) = cfa::plane_offset(k);
                w.set_str("FILTER", &colour.to_string(), "CFA plane colour")?;
                w.history(&format!(
                    "strip-convert: split_cfa plane CFA{k} (as Siril numbers it: data[{dy}::2, {dx}::2] in stored order) of {}",
                    pattern.as_str()
                ))?;
            }
            temps.push(t);
            writers.push(w);
        }
        let mut y = 0;
        let mut planes: [Vec<u8>; 4] = Default::default();
        let mut raw = Vec::new();
        let mut phys = Vec::new();
        // Bytes read since the outputs' pages last started going to disk.
        let mut since = 0u64;
        while y < 2 * h2 {
            let n = rows.min(2 * h2 - y);
            let oy = y / 2;
            if self.a.cfa_rgb {
                phys.resize(info.width as usize * n as usize, 0f64);
                reader.read_rows_f64(y, n, &mut phys)?;
                let bytes: Vec<u8> = phys.iter().flat_map(|v| v.to_ne_bytes()).collect();
                cfa::split_raw(&bytes, info.width as usize, n as usize, 8, &mut planes);
                let vals = |k: usize| -> Vec<f64> {
                    planes[k]
                        .chunks_exact(8)
                        .map(|c| f64::from_ne_bytes(c.try_into().expect("8 bytes")))
                        .collect()
                };
                let planes_of = |c: u8| -> Vec<usize> {
                    (0..4)
                        .filter(|&k| cfa::plane_colour(pattern, k) == c)
                        .collect()
                };
                let (ri, bi) = (planes_of(b'R')[0], planes_of(b'B')[0]);
                let g = planes_of(b'G');
                let (g1, g2) = (vals(g[0]), vals(g[1]));
                let gm: Vec<f64> = g1.iter().zip(&g2).map(|(a, b)| (a + b) / 2.0).collect();
                let w = &mut writers[0];
                w.write_rows_f64(0, oy, &vals(ri))?;
                w.write_rows_f64(1, oy, &gm)?;
                w.write_rows_f64(2, oy, &vals(bi))?;
            } else {
                raw.resize(info.width as usize * n as usize * sb, 0u8);
                reader.read_rows_raw(y, n, &mut raw)?;
                cfa::split_raw(&raw, info.width as usize, n as usize, sb, &mut planes);
                for (w, p) in writers.iter_mut().zip(&planes) {
                    w.write_rows_raw(0, oy, p)?;
                }
            }
            y += n;
            since += u64::from(info.width) * u64::from(n) * sb as u64;
            if since >= WRITEBACK_EVERY {
                // The disk writes while the frame is split, not all at the commit.
                for t in &temps {
                    let _ = t.start_writeback();
                }
                since = 0;
            }
        }
        for w in writers {
            w.finish()?;
        }
        commit(temps)?;
        r.set_in(NAME, "status", json!("ok"));
        Ok(())
    }

    /// Stack every input into one frame.
    fn stack(&self, input: &InputArgs, budget: &BudgetArgs) -> anyhow::Result<Status> {
        let started = Instant::now();
        monitor::reset_peak();
        let a = self.a;
        let method = a.stack.expect("--stack");
        let dest = a.stack_output.clone().expect("clap requires --output");
        let mut out = Output::new(NAME);
        let mut frames: Vec<(Record, FitsReader)> = Vec::new();
        let mut failed = Vec::new();
        let mut planned: Option<u64> = None;
        for item in cli::inputs(NAME, input) {
            let r = match item? {
                Input::Bad(r) => {
                    out.write(&r)?;
                    failed.push(String::from("<bad line>"));
                    continue;
                }
                Input::Record(r) if r.is_error() => {
                    failed.push(r.path_str().to_string());
                    out.write(&r)?;
                    continue;
                }
                Input::Record(r) => r,
            };
            // Without --memory-limit, the smallest budget chunk-plan planned a frame for.
            if let Some(b) = budget.planned(&r) {
                planned = Some(planned.map_or(b.bytes, |p: u64| p.min(b.bytes)));
            }
            match open_frame(a, &r.path()) {
                Ok(f) => frames.push((r, f)),
                Err(e) => {
                    let mut r = r;
                    r.set_error(NAME, &e);
                    failed.push(r.path_str().to_string());
                    out.write(&r)?;
                }
            }
        }
        let mut rec = Record::new(dest.to_string_lossy().into_owned());
        let inputs: Vec<String> = frames
            .iter()
            .map(|(r, _)| r.path_str().to_string())
            .collect();
        rec.set_in(NAME, "output", json!(dest.to_string_lossy()));
        rec.set_in(NAME, "inputs", json!(inputs));
        rec.set_in(NAME, "method", json!(method.as_str()));
        let result = (|| {
            if !failed.is_empty() {
                return Err(Error::new(
                    ErrorKind::BadRecord,
                    format!(
                        "{} frame(s) could not be read ({}): nothing stacked",
                        failed.len(),
                        failed.join(", ")
                    ),
                ));
            }
            if frames.is_empty() {
                return Err(Error::new(ErrorKind::BadRecord, "no frames to stack"));
            }
            let (w, h) = (frames[0].1.info().width, frames[0].1.info().height);
            for (r, f) in &frames {
                if (f.info().width, f.info().height) != (w, h) {
                    return Err(Error::unsupported(format!(
                        "{}: {}x{} but {} is {w}x{h}: frames of one stack must have one size",
                        r.path_str(),
                        f.info().width,
                        f.info().height,
                        inputs[0]
                    )));
                }
            }
            if method == stack::Method::Minmax && frames.len() <= a.reject_low + a.reject_high {
                return Err(Error::unsupported(format!(
                    "minmax rejects {} value(s) per pixel: needs more than that many frames, got {}",
                    a.reject_low + a.reject_high,
                    frames.len()
                )));
            }
            if self.output.dry_run {
                rec.set_in(NAME, "status", json!("dry_run"));
                return Ok(());
            }
            if dest.exists() && !self.output.force {
                rec.set_in(NAME, "status", json!("skipped"));
                return Ok(());
            }
            self.stack_frames(&mut frames, &dest, planned.unwrap_or(self.budget), &mut rec)
        })();
        match result {
            Ok(()) => {
                rec.set_in(NAME, "peak_rss", json!(monitor::peak_rss()));
                rec.set_in(
                    NAME,
                    "seconds",
                    json!((started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0),
                );
            }
            Err(e) => rec.set_error(NAME, &e),
        }
        out.write(&rec)?;
        Ok(out.status())
    }

    fn stack_frames(
        &self,
        frames: &mut [(Record, FitsReader)],
        dest: &Path,
        budget: u64,
        rec: &mut Record,
    ) -> Result<(), Error> {
        let a = self.a;
        let n = frames.len();
        let (w, h) = (frames[0].1.info().width, frames[0].1.info().height);
        if a.weighted && a.stack == Some(stack::Method::Median) {
            return Err(Error::new(
                ErrorKind::BadRecord,
                "--weighted applies to a mean: not to --stack median",
            ));
        }
        // Normalisation: stats of every frame first (streaming passes), then x' = a x + b.
        // The MAD only when a method uses it.
        let need_scale = a.weighted
            || matches!(
                a.normalize,
                Some(normalize::Method::Addscale | normalize::Method::Mulscale)
            );
        let stats = if a.normalize.is_some() || a.weighted {
            self.all_stats(frames, need_scale)?
        } else {
            Vec::new()
        };
        let mut coef = vec![(1.0f64, 0.0f64); n];
        if let Some(m) = a.normalize {
            let rs = match &a.reference {
                Some(p) => self.frame_stats(&mut open_frame(a, p)?, need_scale)?,
                None => stats[0],
            };
            let mut norm = Vec::with_capacity(n);
            for (i, ((r, _), st)) in frames.iter().zip(&stats).enumerate() {
                coef[i] = normalize::coefficients(m, *st, rs)?;
                norm.push(
                    json!({"path": r.path(), "location": st.location, "scale": st.scale,
                                 "a": coef[i].0, "b": coef[i].1}),
                );
            }
            rec.set_in(
                NAME,
                "normalize",
                json!({"method": m.as_str(), "reference": {"location": rs.location, "scale": rs.scale},
                       "frames": norm}),
            );
        }
        // Noise weights (Siril's -weighted): w = 1/sigma^2, sigma = 1.4826 MAD (the
        // Gaussian sigma of a robust scale), scaled as the normalisation scales the frame.
        let mut weights = vec![1.0f64; n];
        if a.weighted {
            let mut noise = Vec::with_capacity(n);
            for (i, st) in stats.iter().enumerate() {
                let sigma = 1.4826 * st.scale * coef[i].0.abs();
                if !(sigma.is_finite() && sigma > 0.0) {
                    return Err(Error::new(
                        ErrorKind::BadRecord,
                        format!(
                            "{}: no noise estimate (MAD {}): cannot weight it",
                            frames[i].0.path().display(),
                            st.scale
                        ),
                    ));
                }
                noise.push(sigma);
            }
            let sum: f64 = noise.iter().map(|s| 1.0 / (s * s)).sum();
            for (w, s) in weights.iter_mut().zip(&noise) {
                // Normalised to sum to n: the mean of the weights is 1.
                *w = n as f64 / (s * s) / sum;
            }
            rec.set_in(
                NAME,
                "weights",
                json!(frames
                    .iter()
                    .zip(noise.iter().zip(&weights))
                    .map(|((r, _), (s, w))| json!({"path": r.path(), "noise": s, "weight": w}))
                    .collect::<Vec<_>>()),
            );
        }
        // Rows per block from the budget through the fits-stack cost model.
        let model = FitsStack::default();
        let summary = Summary {
            format: Format::Fits,
            bytes: 0,
            image: Some(ImageSummary {
                width: u64::from(w),
                height: u64::from(h),
                bands: 1,
                bits: 32,
                sample_format: SampleFormat::Float,
                pages: n as u64,
                layout: Layout::Strips,
                block: [u64::from(w), 1],
                compressed: false,
            }),
            points: None,
            archive: None,
            document: None,
        };
        let p = plan::plan(&model, &summary, Budget::bytes(budget), self.jobs as u32)?;
        let rows = (p.chunk as u32).clamp(1, h);
        let threads = (p.workers as usize).max(1);
        rec.set_in(NAME, "rows_per_block", json!(rows));
        rec.set_in(NAME, "threads", json!(threads));
        rec.set_in(NAME, "predicted_peak_bytes", json!(p.predicted_peak_bytes));
        let params = stack::Params {
            method: a.stack.expect("--stack"),
            sigma_low: a.sigma_low,
            sigma_high: a.sigma_high,
            reject_low: a.reject_low,
            reject_high: a.reject_high,
        };
        let cards = frame_cards(a, &frames[0].1)?;
        let history = format!(
            "strip-convert: {} stack of {n} frames{}{}",
            params.method.as_str(),
            match params.method {
                stack::Method::SigmaClip | stack::Method::Winsorized => format!(
                    ", sigma low {} high {}",
                    params.sigma_low, params.sigma_high
                ),
                stack::Method::Minmax => format!(
                    ", {} low and {} high rejected",
                    params.reject_low, params.reject_high
                ),
                _ => String::new(),
            },
            a.normalize
                .map(|m| format!(", {} normalisation", m.as_str()))
                .unwrap_or_default()
        ) + if a.weighted {
            ", noise-weighted (1/sigma^2, sigma = 1.4826 MAD)"
        } else {
            ""
        };
        let header = |wr: &mut FitsWriter| -> Result<(), Error> {
            wr.copy_cards(&cards)?;
            wr.set_i64("NCOMBINE", n as i64, "frames stacked")?;
            wr.set_str("STACKMET", params.method.as_str(), "stacking method")?;
            if matches!(
                params.method,
                stack::Method::SigmaClip | stack::Method::Winsorized
            ) {
                wr.set_f64("SIGLOW", params.sigma_low, "rejection: sigmas below")?;
                wr.set_f64("SIGHIGH", params.sigma_high, "rejection: sigmas above")?;
            }
            if let Some(m) = a.normalize {
                wr.set_str("NORMMETH", m.as_str(), "normalisation (median, MAD)")?;
            }
            if a.weighted {
                wr.set_str("STACKWGT", "noise", "frames weighted by 1/sigma^2 (MAD)")?;
            }
            wr.history(&history)
        };
        let main = AtomicFile::create(dest)
            .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", dest.display())))?;
        let comp = compression(a, -32);
        rec.set_in(NAME, "compression", compression_json(comp, -32));
        let mut wr = FitsWriter::create(main.temp_path(), w, h, 1, -32, comp)?;
        header(&mut wr)?;
        let mut map = match &a.rejection_map {
            Some(p) => {
                let t = AtomicFile::create(p)
                    .map_err(|e| Error::new(ErrorKind::Io, format!("{}: {e}", p.display())))?;
                let mut m = FitsWriter::create(t.temp_path(), w, h, 1, 16, compression(a, 16))?;
                header(&mut m)?;
                m.set_str("BUNIT", "count", "values rejected at each pixel")?;
                Some((t, m))
            }
            None => None,
        };
        let len_max = w as usize * rows as usize;
        let mut block: Vec<Vec<f32>> = (0..n).map(|_| vec![0f32; len_max]).collect();
        let mut result = vec![0f32; len_max];
        let mut rejected = vec![0f32; len_max];
        let mut total_rejected = 0f64;
        let mut y = 0;
        while y < h {
            let m = rows.min(h - y);
            let len = w as usize * m as usize;
            read_block(frames, &mut block, y, m, len, threads)?;
            stack::combine_block(
                &params,
                &block,
                &coef,
                &weights,
                len,
                &mut result,
                &mut rejected,
                threads,
            );
            wr.write_rows_f32(0, y, &result[..len])?;
            total_rejected += rejected[..len].iter().map(|&v| f64::from(v)).sum::<f64>();
            if let Some((_, mw)) = &mut map {
                // Stored as the map's 16-bit integers (counts never exceed the frames).
                let counts: Vec<u8> = rejected[..len]
                    .iter()
                    .flat_map(|&c| (c.min(f32::from(i16::MAX)) as i16).to_ne_bytes())
                    .collect();
                mw.write_rows_raw(0, y, &counts)?;
            }
            y += m;
            if cli::interrupted() {
                return Err(Error::new(ErrorKind::Io, "interrupted"));
            }
        }
        wr.finish()?;
        let mut files = vec![main];
        if let Some((t, mw)) = map {
            mw.finish()?;
            files.push(t);
        }
        commit(files)?;
        rec.set_in(NAME, "ncombine", json!(n));
        rec.set_in(
            NAME,
            "rejected_fraction",
            json!(total_rejected / (n as f64 * f64::from(w) * f64::from(h))),
        );
        rec.set_in(NAME, "status", json!("ok"));
        Ok(())
    }
}
