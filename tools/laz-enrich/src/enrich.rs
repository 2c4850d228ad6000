//! The out-of-core pipeline for one input file.
//!
//! 1. **Positions pass** (`positions_pass`): decode the points once, in slabs, and write
//!    their stored integer coordinates (12 bytes a point) to a temporary file, in file
//!    order; halo points from neighbouring files (within the halo of this file's extent)
//!    follow. The exact extent comes out of the same pass, so a lying header cannot
//!    hurt. A helper thread decodes the next slab while this one is copied out.
//! 2. **Tiling** (`plan_tiles`): a histogram of that file gives tiles whose points plus
//!    halo fit the budget ([`crate::tiling`]); tiles are grouped into passes.
//! 3. **Feature passes** (`feature_passes`, then `knn_retry`): per group, one sequential
//!    read of the positions collects each tile's owned and halo points (with several
//!    groups, one scan first sorts the positions into a file per group, so each group
//!    reads only its own); per tile a column grid answers radius queries (rayon over the
//!    owned points) and the features are written at `index * record` in a temporary
//!    features file (runs of consecutive indices in one write).
//! 4. **Merge pass** (`merge_pass`): the records saved by the positions pass are read
//!    back in slabs, each record gets its features appended, and the slab goes to the
//!    LAS/LAZ writer: original order, every byte of every input point kept. A helper
//!    thread builds the next slab while the writer compresses this one.
//!
//! Memory: a group's points (about 36 bytes each plus 4 per feature for owned points)
//! and two slabs of records; both sized from the budget by the caller. Disk: the input
//! records, 12 bytes a point of positions (20 more while sorted by group) plus 4 per
//! feature a point, in the temporary directory.

use crate::cache::{self, PassWriter, ReadBehind};
use crate::features::{evaluate, Feature, Orientation};
use crate::ground::GroundGrid;
use crate::las_io::{
    las_error, offsets, open_with, output_header, parallel_decode_fits, restore_header, scales,
    validate,
};
use crate::neighbours::Grid;
use crate::pointfiles::{
    bucket_by_pass, for_each_indexed, for_each_point, slab_xyz, write_ground, write_runs,
    write_xyz, MAX_BUCKETS,
};
use crate::tiling::{in_box, Histogram, Tiling};
use las::{Header, PointDataBuilder, Writer};
use membudget::driver;
use membudget::readahead::{read_ahead, read_ahead_with};
use membudget::{Error, ErrorKind};
use rayon::prelude::*;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// What to compute and how much memory to use.
#[derive(Debug, Clone)]
pub struct Params {
    /// Neighbourhood radius in metres (inclusive).
    pub radius: f64,
    /// The features, in output order.
    pub features: Vec<Feature>,
    /// Output dimension names and descriptions, one per feature.
    pub dims: Vec<(String, String)>,
    /// Normal orientation.
    pub orientation: Orientation,
    /// Write LAZ (else LAS).
    pub compress: bool,
    /// Points (owned plus halo) a feature pass may hold.
    pub capacity: u64,
    /// Points per decode/encode slab.
    pub slab: u64,
    /// Use the chunk-parallel LAZ codec (needs slabs of whole 50,000-point chunks).
    pub parallel_codec: bool,
    /// Where temporary files go.
    pub temp_dir: PathBuf,
    /// Files whose points may be in this file's halo.
    pub neighbours: Vec<PathBuf>,
    /// Search radius for the nearest ground point, when height above ground is asked.
    pub ground_radius: Option<f64>,
    /// k of kNN neighbourhoods (then `radius` is the first halo width and column size).
    pub knn: Option<usize>,
    /// Count the points within 2 m too (IGN building mode).
    pub within_2m: bool,
    /// Leave the temporary files in the page cache ([`cache::keep_cached`]).
    pub keep_cached: bool,
}

/// The radius of the `num_points_2m` count.
const WITHIN_M: f64 = 2.0;

/// What happened, for the record.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// Points in the input.
    pub points: u64,
    /// Halo points taken from neighbouring files.
    pub foreign_points: u64,
    /// Neighbouring files that contributed.
    pub neighbour_files: u64,
    /// Spatial tiles.
    pub tiles: u64,
    /// Passes over the positions file.
    pub passes: u64,
    /// Most points one tile held (owned plus halo).
    pub max_tile_points: u64,
    /// Most points one pass held (its tiles' owned plus halo points).
    pub max_pass_points: u64,
    /// Halo points over all tiles (the price of tiling).
    pub halo_points: u64,
    /// Histogram cells `[x, y]`.
    pub histogram: [usize; 2],
    /// kNN: points whose k nearest were not provably inside their tile's halo, and so
    /// were computed again with a wider one.
    pub knn_retried: u64,
    /// kNN: rounds of such retries.
    pub knn_rounds: u64,
    /// A LAS 1.0-1.3 output has points with return number 6 or 7 (legal in the 3-bit
    /// field, but beyond the header's five per-return counters): written as read, in the
    /// same version, those points counted in the total only.
    pub legacy_returns: bool,
    /// Each phase's name, wall seconds and CPU seconds (all threads), in order.
    pub phases: Vec<(&'static str, f64, f64)>,
}

/// The scratch directory of one input: removed when dropped (an error, a panic) and,
/// registered with `membudget::cli`, when a signal ends the run.
struct Scratch(tempfile::TempDir);

impl Scratch {
    /// Named for its owner (`.laz-enrich.<pid>-<boot>-<random>.scratch`): a later run
    /// into the same directory removes it if this process is killed (SIGKILL, OOM).
    fn new(dir: &Path) -> std::io::Result<Scratch> {
        let t = membudget::outputs::scratch_dir(dir, "laz-enrich")?;
        membudget::cli::register_temp_dir(t.path());
        Ok(Scratch(t))
    }

    fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // Removed before it is unregistered, so no signal in between can leave it.
        let _ = std::fs::remove_dir_all(self.0.path());
        membudget::cli::unregister_temp_dir(self.0.path());
    }
}

/// The output writer. `las::Writer` closes itself when dropped and panics when that
/// fails (a LAS 1.2 point with return number 6 makes it fail); this one is finished
/// explicitly, or closed or given up on purpose when dropped on an error path.
struct OutWriter {
    w: Option<Writer<BufWriter<File>>>,
    /// The header as first written, before any point (for [`OutWriter::finish`]).
    initial: las::raw::Header,
}

impl OutWriter {
    fn new(w: Writer<BufWriter<File>>) -> las::Result<OutWriter> {
        let initial = w.header().clone().into_raw()?;
        Ok(OutWriter {
            w: Some(w),
            initial,
        })
    }

    fn get(&mut self) -> &mut Writer<BufWriter<File>> {
        self.w.as_mut().expect("OutWriter used after finish")
    }

    /// Close the writer. LAS 1.0-1.3 keep five per-return counters, and the las crate
    /// refuses to close a file with points of return 6 or 7 (which the 3-bit field of
    /// those versions holds, and multi-return sensors write): its close has then written
    /// every point and flushed, and the header is written here with the five counters
    /// (and the total and bounds the crate computed). Returns whether that happened.
    fn finish(mut self, out: &File) -> las::Result<bool> {
        let mut w = self.w.take().expect("OutWriter finished twice");
        // The las crate's close can panic on damaged counts (an overflow); the writer is
        // then leaked, since its Drop would close again and panic while unwinding.
        let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.close()));
        let closed = match closed {
            Ok(c) => c,
            Err(_) => {
                std::mem::forget(w);
                return Err(las::Error::Io(std::io::Error::other(
                    "the LAS writer failed on inconsistent point counts",
                )));
            }
        };
        match closed {
            Ok(()) => Ok(false),
            Err(las::Error::ReturnNumber { .. })
                if w.header().version() < las::Version::new(1, 4) =>
            {
                let stats = w.header().clone();
                // Its Drop would close again (appending a second chunk table).
                std::mem::forget(w);
                let raw = legacy_header(&self.initial, stats)?;
                let mut buf = Vec::new();
                raw.write_to(&mut buf)?;
                out.write_all_at(&buf, 0)?;
                Ok(true)
            }
            Err(e) => {
                std::mem::forget(w);
                Err(e)
            }
        }
    }
}

impl Drop for OutWriter {
    fn drop(&mut self) {
        let Some(mut w) = self.w.take() else { return };
        // Not finished: an error or a panic, the output is discarded. Closing frees the
        // codec's buffers; during a panic, or when closing fails, the writer is leaked
        // instead (its Drop would close again and panic).
        if std::thread::panicking() {
            std::mem::forget(w);
            return;
        }
        let closed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.close()));
        if !matches!(closed, Ok(Ok(()))) {
            std::mem::forget(w);
        }
    }
}

/// The LAS 1.0-1.3 header of `initial` (as written before the points) with the point
/// total, the five per-return counters and the bounds of `stats`.
fn legacy_header(initial: &las::raw::Header, stats: Header) -> las::Result<las::raw::Header> {
    // The counters of returns 1-15 as LAS 1.4 keeps them, then the first five.
    let mut b = las::Builder::from(stats);
    b.version = las::Version::new(1, 4);
    let full = b.into_header()?.into_raw()?;
    let large = full.large_file.ok_or(las::Error::ReturnNumber {
        return_number: 6,
        version: Some(initial.version),
    })?;
    let mut raw = initial.clone();
    raw.number_of_point_records =
        u32::try_from(large.number_of_point_records).map_err(|_| las::Error::TooManyPoints {
            n: large.number_of_point_records,
            version: initial.version,
        })?;
    for (c, &n) in raw
        .number_of_points_by_return
        .iter_mut()
        .zip(&large.number_of_points_by_return)
    {
        *c = u32::try_from(n).map_err(|_| las::Error::TooManyPoints {
            n,
            version: initial.version,
        })?;
    }
    (raw.min_x, raw.min_y, raw.min_z) = (full.min_x, full.min_y, full.min_z);
    (raw.max_x, raw.max_y, raw.max_z) = (full.max_x, full.max_y, full.max_z);
    Ok(raw)
}

fn corrupt(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{}: {msg}", path.display()))
}

/// Enrich `input` into the (temporary) file `out`.
pub fn enrich(input: &Path, out: &File, p: &Params) -> Result<Report, Error> {
    // Nothing from the file reaches the las/laz readers unchecked.
    let info = validate(input)?;
    let parallel_decode = p.parallel_codec && parallel_decode_fits(&info);
    // The las reader cannot move between threads: the positions pass opens its own.
    let header = open_with(input, parallel_decode)?.header().clone();
    let n = header.number_of_points();
    let scale = scales(&header);
    if scale.iter().any(|s| !(s.is_finite() && *s > 0.0)) {
        return Err(corrupt(
            input,
            format!("invalid coordinate scales {scale:?}"),
        ));
    }
    let dims: Vec<(&str, &str)> = p
        .dims
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let out_header = output_header(input, &header, &dims, p.compress)?;
    let mut report = Report {
        points: n,
        ..Report::default()
    };
    // The pass files at least (halo points, ground points and the sort by group add to
    // it): refused now rather than failing half-way with ENOSPC.
    let need =
        n.saturating_mul(u64::from(header.point_format().len()) + 12 + 4 * p.features.len() as u64);
    membudget::outputs::ensure_free_space(&p.temp_dir, need, "temporary files")?;
    let tmp = Scratch::new(&p.temp_dir)?;
    cache::keep_cached(p.keep_cached);

    let files = Files::in_dir(tmp.path());
    // Each phase's wall and CPU time, for the record and `-v`.
    let mut clock = (std::time::Instant::now(), membudget::monitor::cpu_seconds());
    let mut phase = |name: &'static str, report: &mut Report| {
        let (wall, cpu) = (
            clock.0.elapsed().as_secs_f64(),
            membudget::monitor::cpu_seconds() - clock.1,
        );
        log::info!(
            "{}: {name} {wall:.2} s, cpu {cpu:.2} s ({:.2} cores), peak RSS so far {} MiB",
            input.display(),
            cpu / wall.max(1e-9),
            membudget::monitor::peak_rss().unwrap_or(0) >> 20
        );
        report.phases.push((name, wall, cpu));
        clock = (std::time::Instant::now(), membudget::monitor::cpu_seconds());
    };
    let extent = positions_pass(input, &header, parallel_decode, p, &files, &mut report)?;
    phase("positions", &mut report);
    let (tiling, groups) = plan_tiles(input, &files.xyz, n, scale, &extent, p, &mut report)?;
    phase("tiling", &mut report);
    let (feat, knn_fails) =
        feature_passes(input, &header, p, &files, &tiling, groups, &mut report)?;
    if let Some(k) = p.knn {
        knn_retry(&files.xyz, &feat, knn_fails, k, &header, p, &mut report)?;
    }
    drop(feat);
    phase("features", &mut report);
    report.legacy_returns = merge_pass(input, out, &header, out_header, p, &files)?;
    restore_header(
        input,
        out,
        &header,
        (n > 0).then_some((extent.lo, extent.hi)),
    )?;
    phase("merge", &mut report);
    Ok(report)
}

/// The scratch files of one input.
struct Files {
    dir: PathBuf,
    /// Positions ([`pointfiles`]), the input's in file order, then neighbours' halo points.
    xyz: PathBuf,
    /// The input's point records, decoded once: the merge pass reads them back instead
    /// of decompressing the input a second time (LAZ decoding is a third of that pass).
    records: PathBuf,
    /// Ground points' positions (class 2), when height above ground is asked for.
    ground: PathBuf,
    /// Feature records at `index * record` ([`pointfiles::write_runs`]).
    features: PathBuf,
}

impl Files {
    fn in_dir(dir: &Path) -> Files {
        Files {
            dir: dir.to_path_buf(),
            xyz: dir.join("xyz"),
            records: dir.join("records"),
            ground: dir.join("ground"),
            features: dir.join("features"),
        }
    }
}

/// What the positions pass found: the stored extent of the input's points, the halo in
/// stored units, and the points written (the input's plus neighbours' halo points).
struct Extent {
    lo: [i64; 3],
    hi: [i64; 3],
    halo: [i64; 2],
    total: u64,
}

/// Bytes of one input point record.
fn record_len(header: &Header) -> usize {
    PointDataBuilder::new()
        .for_header(header)
        .build()
        .record_len()
}

/// 1. Positions pass: decode the points once, in slabs, saving their records and
///    positions (and ground points); then neighbours' halo points.
fn positions_pass(
    input: &Path,
    header: &Header,
    parallel_decode: bool,
    p: &Params,
    files: &Files,
    report: &mut Report,
) -> Result<Extent, Error> {
    let n = header.number_of_points();
    let scale = scales(header);
    let mut xyz = PassWriter::new(1 << 20, File::create(&files.xyz)?);
    let mut records = PassWriter::new(1 << 20, File::create(&files.records)?);
    let mut ground = match p.ground_radius {
        Some(_) => Some(PassWriter::new(1 << 20, File::create(&files.ground)?)),
        None => None,
    };
    let mut lo = [i64::MAX; 3];
    let mut hi = [i64::MIN; 3];
    let in_len = record_len(header);
    // Two slabs in turn: a helper thread decodes the next one (on every core, chunk by
    // chunk) while this thread copies out the records and positions of this one.
    let pool = vec![PointDataBuilder::new().for_header(header).build(); 2];
    let (slab, parallel) = (p.slab, parallel_decode);
    let open = || {
        let mut reader = open_with(input, parallel)?;
        let mut read = 0u64;
        Ok(move |pd: &mut las::PointData| {
            if read >= n {
                return Ok(false);
            }
            driver::failpoint("decode", input);
            match reader.fill_points(slab.min(n - read), pd) {
                Err(e) => Err(las_error(input, e)),
                Ok(0) => Err(corrupt(
                    input,
                    format!("truncated: the header says {n} points, only {read} could be read"),
                )),
                Ok(got) => {
                    read += got;
                    Ok(true)
                }
            }
        })
    };
    read_ahead_with(pool, open, |slabs| -> Result<(), Error> {
        let mut pos: Vec<u8> = Vec::new();
        for pd in slabs {
            let pd = pd?;
            records.write_all(pd.raw_bytes())?;
            if let Some(g) = ground.as_mut() {
                write_ground(g, &pd)?;
            }
            // Positions straight from the records (x, y, z are the first 12 bytes of
            // every point format), one write per slab.
            pos.clear();
            for r in pd.raw_bytes().chunks_exact(in_len) {
                let q = [
                    i32::from_le_bytes([r[0], r[1], r[2], r[3]]),
                    i32::from_le_bytes([r[4], r[5], r[6], r[7]]),
                    i32::from_le_bytes([r[8], r[9], r[10], r[11]]),
                ];
                for a in 0..3 {
                    lo[a] = lo[a].min(i64::from(q[a]));
                    hi[a] = hi[a].max(i64::from(q[a]));
                }
                pos.extend_from_slice(&r[..12]);
            }
            xyz.write_all(&pos)?;
        }
        Ok(())
    })??;
    drop(records.finish()?);
    if n == 0 {
        lo = [0; 3];
        hi = [0; 3];
    }
    // The halo covers the neighbourhood radius and the ground search radius.
    let reach = p
        .radius
        .max(p.ground_radius.unwrap_or(0.0))
        .max(if p.within_2m { WITHIN_M } else { 0.0 });
    // At most the whole i32 coordinate range (a tiny scale must not overflow).
    let halo = [
        ((reach / scale[0]).floor() as i64).clamp(0, 1 << 33) + 1,
        ((reach / scale[1]).floor() as i64).clamp(0, 1 << 33) + 1,
    ];
    // Halo points from neighbouring files: within the halo of this file's extent.
    let total = n + foreign_halo(
        input,
        header,
        p,
        lo,
        hi,
        halo,
        &mut xyz,
        ground.as_mut(),
        report,
    )?;
    drop(xyz.finish()?);
    if let Some(g) = ground.take() {
        drop(g.finish()?);
    }
    Ok(Extent {
        lo,
        hi,
        halo,
        total,
    })
}

/// 2. Tiling: a histogram of the positions gives tiles whose points plus halo fit the
///    capacity, grouped into passes.
fn plan_tiles(
    input: &Path,
    xyz: &Path,
    n: u64,
    scale: [f64; 3],
    e: &Extent,
    p: &Params,
    report: &mut Report,
) -> Result<(Tiling, Vec<std::ops::Range<usize>>), Error> {
    let mut hlo = [e.lo[0], e.lo[1]];
    let mut hhi = [e.hi[0], e.hi[1]];
    if e.total > n {
        // Foreign points may lie outside this file's extent: the histogram covers them.
        for_each_point(xyz, |_, q| {
            hlo = [hlo[0].min(i64::from(q[0])), hlo[1].min(i64::from(q[1]))];
            hhi = [hhi[0].max(i64::from(q[0])), hhi[1].max(i64::from(q[1]))];
            Ok(())
        })?;
    }
    let mut hist = Histogram::new(hlo, hhi, scale, p.radius, e.total);
    for_each_point(xyz, |_, q| {
        hist.add(q[0], q[1]);
        Ok(())
    })?;
    report.histogram = hist.dims();
    let tiling = Tiling::plan(hist, e.halo, p.capacity)?;
    let groups = tiling.groups(p.capacity);
    report.tiles = tiling.tiles.len() as u64;
    report.passes = groups.len() as u64;
    log::debug!(
        "{}: {} tiles in {} passes (capacity {} points)",
        input.display(),
        tiling.tiles.len(),
        groups.len(),
        p.capacity
    );
    Ok((tiling, groups))
}

/// 3. Feature passes: per group of tiles, collect each tile's owned, halo (and ground)
///    points, compute the owned points' features and write them at their indices.
///    Returns the features file and the kNN points to compute again.
fn feature_passes(
    input: &Path,
    header: &Header,
    p: &Params,
    files: &Files,
    tiling: &Tiling,
    groups: Vec<std::ops::Range<usize>>,
    report: &mut Report,
) -> Result<(File, Vec<KnnRetry>), Error> {
    let n = header.number_of_points();
    let started = std::time::Instant::now();
    let mut t_collect = 0.0;
    let mut t_compute = 0.0;
    // 3. Feature passes.
    let nf = p.features.len();
    let rec = nf * 4;
    let feat = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&files.features)?;
    feat.set_len(n.saturating_mul(rec as u64))?;
    let mut slot_of = vec![u32::MAX; tiling.tiles.len()];
    // kNN points to compute again with a wider halo: (index, position, search radius).
    let mut knn_fails: Vec<KnnRetry> = Vec::new();
    // With several passes, one scan sorts the positions into a file per pass (the
    // points its tiles own or hold in their halo, in file order), so each pass reads
    // its own points rather than all of them again.
    let buckets = if groups.len() > 1 && groups.len() <= MAX_BUCKETS {
        Some(bucket_by_pass(&files.xyz, &files.dir, tiling, &groups)?)
    } else {
        None
    };
    // Tiles are computed on the pool while this writer puts their features in place
    // and waits for the disk (`cache::written_batch`): done between tiles, that wait
    // left both cores idle, once per tile.
    let (to_writer, blocks) = std::sync::mpsc::sync_channel::<(Vec<u64>, Vec<f32>)>(1);
    std::thread::scope(|s| -> Result<(), Error> {
        let writer = s.spawn(|| features_writer(&feat, blocks, rec));
        let passes = (|| -> Result<(), Error> {
            for (gk, g) in groups.into_iter().enumerate() {
                struct TileBuf {
                    owned: Vec<[i32; 3]>,
                    index: Vec<u64>,
                    halo: Vec<[i32; 3]>,
                    ground: Vec<[i32; 3]>,
                }
                let mut bufs: Vec<TileBuf> = g
                    .clone()
                    .map(|t| {
                        let tile = &tiling.tiles[t];
                        TileBuf {
                            owned: Vec::with_capacity(tile.owned as usize),
                            index: Vec::with_capacity(tile.owned as usize),
                            halo: Vec::with_capacity(
                                tile.held_bound.saturating_sub(tile.owned) as usize
                            ),
                            ground: Vec::new(),
                        }
                    })
                    .collect();
                for (k, t) in g.clone().enumerate() {
                    slot_of[t] = k as u32;
                }
                let tc = std::time::Instant::now();
                let mut take = |i: u64, q: [i32; 3]| -> Result<(), Error> {
                    let (cell, own) = tiling.owner(q[0], q[1]);
                    if g.contains(&(own as usize)) {
                        let b = &mut bufs[slot_of[own as usize] as usize];
                        if i < n {
                            b.owned.push(q);
                            b.index.push(i);
                        } else {
                            b.halo.push(q);
                        }
                    }
                    for &t in tiling.near(cell) {
                        if g.contains(&(t as usize))
                            && in_box(&tiling.tiles[t as usize].halo_box, q[0], q[1])
                        {
                            bufs[slot_of[t as usize] as usize].halo.push(q);
                        }
                    }
                    Ok(())
                };
                match &buckets {
                    Some(paths) => {
                        for_each_indexed(&paths[gk], &mut take)?;
                        // Read once: its disk space is given back at once.
                        std::fs::remove_file(&paths[gk])?;
                    }
                    None => for_each_point(&files.xyz, &mut take)?,
                }
                if p.ground_radius.is_some() {
                    // Ground points go to every tile of the pass whose halo box holds them.
                    for_each_point(&files.ground, |_, q| {
                        let (cell, own) = tiling.owner(q[0], q[1]);
                        for t in std::iter::once(own).chain(tiling.near(cell).iter().copied()) {
                            if g.contains(&(t as usize))
                                && in_box(&tiling.tiles[t as usize].halo_box, q[0], q[1])
                            {
                                bufs[slot_of[t as usize] as usize].ground.push(q);
                            }
                        }
                        Ok(())
                    })?;
                }
                for t in g.clone() {
                    slot_of[t] = u32::MAX;
                }
                let held: usize = bufs.iter().map(|b| b.owned.len() + b.halo.len()).sum();
                report.max_pass_points = report.max_pass_points.max(held as u64);
                t_collect += tc.elapsed().as_secs_f64();
                let tc = std::time::Instant::now();
                for (k, b) in bufs.iter_mut().enumerate() {
                    let TileBuf {
                        owned,
                        index,
                        halo,
                        ground,
                    } = std::mem::replace(
                        b,
                        TileBuf {
                            owned: Vec::new(),
                            index: Vec::new(),
                            halo: Vec::new(),
                            ground: Vec::new(),
                        },
                    );
                    report.halo_points += halo.len() as u64;
                    report.max_tile_points = report
                        .max_tile_points
                        .max((owned.len() + halo.len()) as u64);
                    driver::failpoint("tile", input);
                    let fails = tile_features(
                        &owned,
                        halo,
                        ground,
                        header,
                        p,
                        &tiling.tiles[g.start + k].halo_box,
                        |first, values| {
                            let index = index[first..first + values.len() / nf.max(1)].to_vec();
                            // A closed channel means the writer stopped on an error, which
                            // its join reports.
                            to_writer.send((index, values)).map_err(|_| {
                                Error::new(ErrorKind::Io, "the features writer stopped")
                            })
                        },
                    )?;
                    for (pos, rho) in fails {
                        let pos = pos as usize;
                        knn_fails.push((index[pos], owned[pos], rho));
                    }
                    drop(owned);
                    if membudget::cli::interrupted() {
                        return Err(Error::new(ErrorKind::Io, "interrupted"));
                    }
                }
                t_compute += tc.elapsed().as_secs_f64();
            }
            Ok(())
        })();
        drop(to_writer);
        let written = writer.join().unwrap_or_else(|_| {
            Err(Error::new(
                ErrorKind::Internal,
                "the features writer panicked",
            ))
        });
        // The writer's own error explains a pass that stopped because it had gone.
        written.and(passes)
    })?;
    log::debug!(
        "{}: feature passes {:.2} s (collect {t_collect:.2} s, compute {t_compute:.2} s)",
        input.display(),
        started.elapsed().as_secs_f64(),
    );
    Ok((feat, knn_fails))
}

/// Write the feature blocks of the passes at their indices, the pages out of the cache
/// a batch behind (see `cache`).
fn features_writer(
    feat: &File,
    blocks: std::sync::mpsc::Receiver<(Vec<u64>, Vec<f32>)>,
    rec: usize,
) -> Result<(), Error> {
    let mut since = 0usize;
    for (index, values) in blocks {
        write_runs(feat, &index, &values, rec)?;
        since += index.len() * rec;
        if since >= 16 << 20 {
            cache::written_batch(feat);
            since = 0;
        }
    }
    cache::written_batch(feat);
    Ok(())
}

/// 4. Merge pass: each saved record gets its features appended, in slabs, for the
///    LAS/LAZ writer. Returns whether the output has returns 6 and 7 in a LAS 1.0-1.3
///    header ([`OutWriter::finish`]).
fn merge_pass(
    input: &Path,
    out: &File,
    header: &Header,
    out_header: Header,
    p: &Params,
    files: &Files,
) -> Result<bool, Error> {
    let n = header.number_of_points();
    let mut recs = BufReader::with_capacity(1 << 20, File::open(&files.records)?);
    let codec = las::WriterOptions::default().with_laz_parallelism(if p.parallel_codec {
        las::LazParallelism::Yes
    } else {
        las::LazParallelism::No
    });
    let mut writer = OutWriter::new(
        Writer::with_options(
            BufWriter::with_capacity(1 << 20, out.try_clone()?),
            out_header,
            codec,
        )
        .map_err(|e| las_error(input, e))?,
    )
    .map_err(|e| las_error(input, e))?;
    let out_fmt = *writer.get().header().point_format();
    let mut feats = BufReader::with_capacity(1 << 20, File::open(&files.features)?);
    let in_len = record_len(header);
    let rec = p.features.len() * 4;
    let out_len = in_len + rec;
    // Two slabs in turn: a helper thread reads and interleaves the next one while the
    // writer compresses this one (LAZ compression is a quarter of the run; the copying
    // would otherwise leave one core idle between slabs). It reads in small blocks, so
    // the two slabs hold what one slab plus its input copies held before.
    let pool = vec![
        PointDataBuilder::new()
            .with_format(out_fmt)
            .with_transforms(*header.transforms())
            .build();
        2
    ];
    let slab = p.slab;
    const BLOCK: usize = 4096;
    let mut rbuf = vec![0u8; BLOCK * in_len];
    let mut fbuf = vec![0u8; BLOCK * rec];
    let mut done = 0u64;
    let (mut recs_read, mut feats_read) = (ReadBehind::default(), ReadBehind::default());
    let interleave = move |pd: &mut las::PointData| -> Result<bool, Error> {
        if done >= n {
            return Ok(false);
        }
        driver::failpoint("merge", input);
        let got = slab.min(n - done) as usize;
        for out in pd.resize_for(got).chunks_mut(BLOCK * out_len) {
            let m = out.len() / out_len;
            recs.read_exact(&mut rbuf[..m * in_len])?;
            feats.read_exact(&mut fbuf[..m * rec])?;
            recs_read.consumed(recs.get_ref(), m * in_len);
            feats_read.consumed(feats.get_ref(), m * rec);
            for ((o, r), f) in out
                .chunks_exact_mut(out_len)
                .zip(rbuf.chunks_exact(in_len))
                .zip(fbuf.chunks_exact(rec))
            {
                o[..in_len].copy_from_slice(r);
                o[in_len..].copy_from_slice(f);
            }
        }
        done += got as u64;
        // Now, not on a next call: the helper is stopped once the last slab is used.
        if done >= n {
            recs_read.done(recs.get_ref());
            feats_read.done(feats.get_ref());
        }
        Ok(true)
    };
    read_ahead(pool, interleave, |slabs| -> Result<(), Error> {
        for pd in slabs {
            writer
                .get()
                .write_points(&*pd?)
                .map_err(|e| las_error(input, e))?;
        }
        Ok(())
    })??;
    writer.finish(out).map_err(|e| las_error(input, e))
}

/// Owned points whose features are computed, and handed to the writer, at once: small
/// enough that the values of two blocks (one computed, one written) cost little, large
/// enough that a block is thousands of tasks of 256 points for the threads.
const FEATURE_BLOCK: usize = 1 << 16;

/// Features of the owned points of one tile, `rec / 4` f32 per point in owned order,
/// handed to `sink` a block at a time (`sink(first, values)`), and (kNN) the owned
/// points whose k nearest are not provably inside `halo_box` (the region whose every
/// point the tile holds), with the radius that would be enough.
fn tile_features(
    owned: &[[i32; 3]],
    halo: Vec<[i32; 3]>,
    ground: Vec<[i32; 3]>,
    header: &Header,
    p: &Params,
    halo_box: &[i64; 4],
    mut sink: impl FnMut(usize, Vec<f32>) -> Result<(), Error>,
) -> Result<Vec<(u32, f64)>, Error> {
    let scale = scales(header);
    let t = std::time::Instant::now();
    let (grid, grid_2m) = {
        let mut all = halo;
        all.extend_from_slice(owned);
        let g2 = p.within_2m.then(|| Grid::build(&all, scale, WITHIN_M));
        (Grid::build(&all, scale, p.radius), g2)
    };
    log::debug!(
        "grid of {} points built in {:.3} s",
        grid.len(),
        t.elapsed().as_secs_f64()
    );
    let ground = p.ground_radius.map(|gr| {
        let grid = GroundGrid::build(&ground, scale, gr);
        drop(ground);
        grid
    });
    let nf = p.features.len();
    let mut fails = Vec::new();
    for (b, block) in owned.chunks(FEATURE_BLOCK).enumerate() {
        let first = b * FEATURE_BLOCK;
        let mut values = vec![0f32; block.len() * nf];
        let block_fails: Vec<Vec<(u32, f64)>> = values
            .par_chunks_mut(nf * 256)
            .zip(block.par_chunks(256))
            .enumerate()
            .map_init(
                std::collections::BinaryHeap::new,
                |heap, (chunk, (out, pts))| {
                    let mut fails = Vec::new();
                    for (i, (o, q)) in out.chunks_exact_mut(nf).zip(pts).enumerate() {
                        let hag = ground
                            .as_ref()
                            .and_then(|g| g.nearest_z(*q))
                            .map_or(f64::NAN, |z| f64::from(q[2] - z) * scale[2]);
                        let n2 = grid_2m
                            .as_ref()
                            .map_or(f64::NAN, |g| g.radius_sums(*q).n as f64);
                        let extra = [hag, n2];
                        if let Some(k) = p.knn {
                            let (sums, kth) = grid.knn_sums(*q, k, heap);
                            if !knn_exact(*q, kth, halo_box, scale) {
                                let rho = kth.map_or(2.0 * p.radius, f64::sqrt);
                                fails.push(((first + chunk * 256 + i) as u32, rho));
                            }
                            let dk = kth.map_or(f64::NAN, f64::sqrt);
                            point_features(&sums, q, header, p, dk, extra, o);
                        } else {
                            let sums = grid.radius_sums(*q);
                            point_features(&sums, q, header, p, p.radius, extra, o);
                        }
                    }
                    fails
                },
            )
            .collect();
        fails.extend(block_fails.into_iter().flatten());
        sink(first, values)?;
    }
    Ok(fails)
}

/// One point's features from its neighbourhood sums.
fn point_features(
    sums: &crate::features::Sums,
    q: &[i32; 3],
    header: &Header,
    p: &Params,
    radius: f64,
    extra: [f64; 2],
    out: &mut [f32],
) {
    let scale = scales(header);
    let off = offsets(header);
    let at = [
        f64::from(q[0]) * scale[0] + off[0],
        f64::from(q[1]) * scale[1] + off[1],
        f64::from(q[2]) * scale[2] + off[2],
    ];
    evaluate(
        &p.features,
        sums,
        scale,
        radius,
        at,
        p.orientation,
        extra,
        out,
    );
}

/// Whether k nearest found with squared distance `kth` (None: fewer than k found) are
/// the true k nearest: every point not held lies outside `b`, so at least the XY
/// distance to its edge away; strictly farther than the k-th means no unseen point can
/// enter or tie.
fn knn_exact(q: [i32; 3], kth: Option<f64>, b: &[i64; 4], scale: [f64; 3]) -> bool {
    let (x, y) = (i64::from(q[0]), i64::from(q[1]));
    let side = |gap: i64, s: f64| {
        if gap > i64::MAX / 4 {
            f64::INFINITY
        } else {
            gap as f64 * s
        }
    };
    // Unseen points: x < b[0] (at least x - b[0] + 1 away), x >= b[2] (b[2] - x away).
    let gaps = [
        side(x.saturating_sub(b[0]).saturating_add(1), scale[0]),
        side(b[2].saturating_sub(x), scale[0]),
        side(y.saturating_sub(b[1]).saturating_add(1), scale[1]),
        side(b[3].saturating_sub(y), scale[1]),
    ];
    let edge = gaps.into_iter().fold(f64::INFINITY, f64::min);
    match kth {
        Some(d2) => d2 < edge * edge,
        None => edge.is_infinite(),
    }
}

/// A kNN point to compute again: its index, position and the search radius (metres)
/// that holds its k nearest.
type KnnRetry = (u64, [i32; 3], f64);

/// One batch of [`knn_retry`]: collect the points in the batch's boxes (`None` when
/// they exceed the capacity), compute the exact ones and write them; returns the points
/// that need a still wider box.
fn knn_batch(
    xyz_path: &Path,
    feat: &File,
    fails: &[KnnRetry],
    k: usize,
    header: &Header,
    p: &Params,
    slots: [Option<usize>; 2],
) -> Result<Option<Vec<KnnRetry>>, Error> {
    let scale = scales(header);
    let nf = p.features.len();
    let rec = nf * 4;
    let reach = |rho: f64, a: usize| ((rho / scale[a]).ceil() as i64).clamp(0, 1 << 33) + 1;
    let boxes: Vec<[i64; 4]> = fails
        .iter()
        .map(|(_, q, rho)| {
            let (x, y) = (i64::from(q[0]), i64::from(q[1]));
            let (rx, ry) = (reach(*rho, 0), reach(*rho, 1));
            [x - rx, y - ry, x + rx + 1, y + ry + 1]
        })
        .collect();
    // A coarse grid of the boxes, so each position checks only the boxes near it.
    let cell = boxes
        .iter()
        .map(|b| (b[2] - b[0]).max(b[3] - b[1]))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut index: std::collections::HashMap<(i64, i64), Vec<u32>> =
        std::collections::HashMap::new();
    for (i, b) in boxes.iter().enumerate() {
        for cy in b[1].div_euclid(cell)..=(b[3] - 1).div_euclid(cell) {
            for cx in b[0].div_euclid(cell)..=(b[2] - 1).div_euclid(cell) {
                index.entry((cx, cy)).or_default().push(i as u32);
            }
        }
    }
    let mut held: Vec<Vec<[i32; 3]>> = vec![Vec::new(); fails.len()];
    let mut total = 0u64;
    let mut over = false;
    for_each_point(xyz_path, |_, q| {
        if over {
            return Ok(());
        }
        let (x, y) = (i64::from(q[0]), i64::from(q[1]));
        if let Some(list) = index.get(&(x.div_euclid(cell), y.div_euclid(cell))) {
            for &i in list {
                let b = &boxes[i as usize];
                if x >= b[0] && x < b[2] && y >= b[1] && y < b[3] {
                    held[i as usize].push(q);
                    total += 1;
                }
            }
            if total > p.capacity {
                over = true;
            }
        }
        Ok(())
    })?;
    if over {
        return Ok(None);
    }
    let mut next = Vec::new();
    let mut heap = std::collections::BinaryHeap::new();
    let mut buf = vec![0u8; rec];
    let mut out = vec![0f32; nf];
    for (i, (idx, q, rho)) in fails.iter().enumerate() {
        let pts = std::mem::take(&mut held[i]);
        let grid = Grid::build(&pts, scale, (*rho).max(p.radius / 4.0));
        drop(pts);
        let (sums, kth) = grid.knn_sums(*q, k, &mut heap);
        if !knn_exact(*q, kth, &boxes[i], scale) {
            next.push((*idx, *q, kth.map_or(2.0 * rho, f64::sqrt).max(2.0 * rho)));
            continue;
        }
        // Height above ground and the 2 m count do not depend on k: kept from the
        // first computation.
        let mut extra = [f64::NAN; 2];
        if slots.iter().any(Option::is_some) {
            feat.read_exact_at(&mut buf, idx * rec as u64)?;
            for (e, slot) in extra.iter_mut().zip(slots) {
                if let Some(slot) = slot {
                    let b = &buf[slot * 4..slot * 4 + 4];
                    *e = f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                }
            }
        }
        let dk = kth.map_or(f64::NAN, f64::sqrt);
        point_features(&sums, q, header, p, dk, extra, &mut out);
        write_runs(feat, &[*idx], &out, rec)?;
    }
    Ok(Some(next))
}

/// Compute again, exactly, the kNN points a tile's halo could not vouch for: each gets
/// a box of its needed radius; one pass over the positions collects every point in
/// the boxes of a batch of tiles' worth; repeat (radius doubled where even fewer than
/// k points were found) until every point is exact.
fn knn_retry(
    xyz_path: &Path,
    feat: &File,
    mut fails: Vec<KnnRetry>,
    k: usize,
    header: &Header,
    p: &Params,
    report: &mut Report,
) -> Result<(), Error> {
    let slot = |f| p.features.iter().position(|g| *g == f);
    let slots = [
        slot(crate::features::Feature::HeightAboveGround),
        slot(crate::features::Feature::PointsWithin2m),
    ];
    report.knn_retried = fails.len() as u64;
    while !fails.is_empty() {
        report.knn_rounds += 1;
        if report.knn_rounds > 40 {
            return Err(Error::new(ErrorKind::Internal, "kNN halo did not converge"));
        }
        fails.sort_unstable_by_key(|f| f.0);
        let mut next = Vec::new();
        let mut start = 0;
        // Batches as large as the capacity allows: halved when the points their boxes
        // hold do not fit.
        let mut batch = fails.len();
        while start < fails.len() {
            let part = &fails[start..(start + batch).min(fails.len())];
            match knn_batch(xyz_path, feat, part, k, header, p, slots)? {
                Some(mut again) => {
                    next.append(&mut again);
                    start += part.len();
                }
                None if batch > 1 => batch /= 2,
                None => {
                    return Err(Error::new(
                        ErrorKind::Budget,
                        format!(
                            "the {k} nearest points of one border point need more than the {} points the memory budget allows",
                            p.capacity
                        ),
                    ))
                }
            }
        }
        fails = next;
    }
    Ok(())
}

/// Append to `xyz` the points of neighbouring files that lie within the halo of this
/// file's extent, in this file's stored coordinates. Returns how many.
#[allow(clippy::too_many_arguments)]
fn foreign_halo(
    input: &Path,
    header: &Header,
    p: &Params,
    lo: [i64; 3],
    hi: [i64; 3],
    halo: [i64; 2],
    xyz: &mut impl Write,
    mut ground: Option<&mut PassWriter>,
    report: &mut Report,
) -> Result<u64, Error> {
    let scale = scales(header);
    let off = offsets(header);
    let me = input.canonicalize().ok();
    let mut count = 0u64;
    // Extent in metres grown by the radius, to skip files by their header bounds.
    let world = |a: usize, v: i64| v as f64 * scale[a] + off[a];
    let (wx0, wx1) = (world(0, lo[0]) - p.radius, world(0, hi[0]) + p.radius);
    let (wy0, wy1) = (world(1, lo[1]) - p.radius, world(1, hi[1]) + p.radius);
    for path in &p.neighbours {
        if path.canonicalize().ok() == me {
            continue;
        }
        let opened = validate(path)
            .and_then(|info| open_with(path, p.parallel_codec && parallel_decode_fits(&info)));
        let mut r = match opened {
            Ok(r) => r,
            Err(e) => {
                log::warn!("neighbour {} skipped: {}", path.display(), e.message);
                continue;
            }
        };
        let h = r.header().clone();
        let b = h.bounds();
        if b.max.x < wx0 || b.min.x > wx1 || b.max.y < wy0 || b.min.y > wy1 {
            continue;
        }
        let (fs, fo) = (scales(&h), offsets(&h));
        let same = fs == scale && fo == off;
        if !same {
            log::warn!(
                "{}: scales/offsets differ from {}; its points are re-quantised",
                path.display(),
                input.display()
            );
        }
        let mut taken = 0u64;
        let mut pd = PointDataBuilder::new().for_header(&h).build();
        let total = h.number_of_points();
        let mut done = 0u64;
        while done < total {
            let got = r
                .fill_points(p.slab.min(total - done), &mut pd)
                .map_err(|e| las_error(path, e))?;
            if got == 0 {
                return Err(corrupt(path, "truncated neighbour file"));
            }
            for (q, class) in slab_xyz(&pd).zip(pd.classification()) {
                let q = if same {
                    [i64::from(q[0]), i64::from(q[1]), i64::from(q[2])]
                } else {
                    let mut m = [0i64; 3];
                    for a in 0..3 {
                        let w = f64::from(q[a]) * fs[a] + fo[a];
                        m[a] = ((w - off[a]) / scale[a]).round() as i64;
                    }
                    m
                };
                if q[0] < lo[0] - halo[0]
                    || q[0] > hi[0] + halo[0]
                    || q[1] < lo[1] - halo[1]
                    || q[1] > hi[1] + halo[1]
                {
                    continue;
                }
                let (Ok(x), Ok(y), Ok(z)) = (
                    i32::try_from(q[0]),
                    i32::try_from(q[1]),
                    i32::try_from(q[2]),
                ) else {
                    continue;
                };
                xyz.write_all(&x.to_le_bytes())?;
                xyz.write_all(&y.to_le_bytes())?;
                xyz.write_all(&z.to_le_bytes())?;
                if class == 2 {
                    if let Some(g) = ground.as_mut() {
                        write_xyz(g, [x, y, z])?;
                    }
                }
                taken += 1;
            }
            done += got;
        }
        if taken > 0 {
            report.neighbour_files += 1;
        }
        count += taken;
    }
    report.foreign_points = count;
    Ok(count)
}
