//! The out-of-core pipeline for one input file.
//!
//! 1. **Positions pass**: decode the points once, in slabs, and write their stored
//!    integer coordinates (12 bytes a point) to a temporary file, in file order; halo
//!    points from neighbouring files (within the halo of this file's extent) follow.
//!    The exact extent comes out of the same pass, so a lying header cannot hurt.
//! 2. **Tiling**: a histogram of that file gives tiles whose points plus halo fit the
//!    budget ([`crate::tiling`]); tiles are grouped into passes.
//! 3. **Feature passes**: per group, one sequential read of the positions file collects
//!    each tile's owned and halo points; per tile a column grid answers radius queries
//!    (rayon over the owned points) and the features are written at `index * record`
//!    in a temporary features file (runs of consecutive indices in one write).
//! 4. **Merge pass**: the input is decoded again in slabs, each record gets its
//!    features appended, and the slab goes to the LAS/LAZ writer: original order, every
//!    byte of every input point kept.
//!
//! Memory: a group's points (about 36 bytes each plus 4 per feature for owned points)
//! and a slab of records; both sized from the budget by the caller. Disk: 12 bytes a
//! point plus 4 per feature a point, in the temporary directory.

use crate::features::{evaluate, Feature, Orientation};
use crate::ground::GroundGrid;
use crate::las_io::{las_error, offsets, open_with, output_header, scales};
use crate::neighbours::Grid;
use crate::tiling::{in_box, Histogram, Tiling};
use las::{Header, PointDataBuilder, Writer};
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
}

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
}

fn corrupt(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::corrupt(format!("{}: {msg}", path.display()))
}

/// Stored coordinates of a slab's points.
fn slab_xyz(pd: &las::PointData) -> impl Iterator<Item = [i32; 3]> + '_ {
    pd.x_raw()
        .zip(pd.y_raw())
        .zip(pd.z_raw())
        .map(|((x, y), z)| [x, y, z])
}

/// Enrich `input` into the (temporary) file `out`.
pub fn enrich(input: &Path, out: &File, p: &Params) -> Result<Report, Error> {
    let mut reader = open_with(input, p.parallel_codec)?;
    let header = reader.header().clone();
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
    let tmp = tempfile::Builder::new()
        .prefix(".laz-enrich.")
        .tempdir_in(&p.temp_dir)?;

    let t0 = std::time::Instant::now();
    // 1. Positions pass.
    let xyz_path = tmp.path().join("xyz");
    let mut xyz = BufWriter::with_capacity(1 << 20, File::create(&xyz_path)?);
    // The records themselves, decoded once: the merge pass reads them back instead of
    // decompressing the input a second time (LAZ decoding is a third of that pass).
    let rec_path = tmp.path().join("records");
    let mut records = BufWriter::with_capacity(1 << 20, File::create(&rec_path)?);
    // Ground points (class 2), when height above ground is asked for.
    let ground_path = tmp.path().join("ground");
    let mut ground = match p.ground_radius {
        Some(_) => Some(BufWriter::with_capacity(
            1 << 20,
            File::create(&ground_path)?,
        )),
        None => None,
    };
    let mut lo = [i64::MAX; 3];
    let mut hi = [i64::MIN; 3];
    let mut pd = PointDataBuilder::new().for_header(&header).build();
    let mut read = 0u64;
    while read < n {
        let want = p.slab.min(n - read);
        let got = reader
            .fill_points(want, &mut pd)
            .map_err(|e| las_error(input, e))?;
        if got == 0 {
            return Err(corrupt(
                input,
                format!("truncated: the header says {n} points, only {read} could be read"),
            ));
        }
        records.write_all(pd.raw_bytes())?;
        if let Some(g) = ground.as_mut() {
            write_ground(g, &pd)?;
        }
        for q in slab_xyz(&pd) {
            for a in 0..3 {
                lo[a] = lo[a].min(i64::from(q[a]));
                hi[a] = hi[a].max(i64::from(q[a]));
            }
            xyz.write_all(&q[0].to_le_bytes())?;
            xyz.write_all(&q[1].to_le_bytes())?;
            xyz.write_all(&q[2].to_le_bytes())?;
        }
        read += got;
    }
    drop(reader);
    let in_len = pd.record_len();
    drop(pd);
    records.flush()?;
    drop(records);
    if n == 0 {
        lo = [0; 3];
        hi = [0; 3];
    }
    // The halo covers the neighbourhood radius and the ground search radius.
    let reach = p.radius.max(p.ground_radius.unwrap_or(0.0));
    let halo = [
        (reach / scale[0]).floor() as i64 + 1,
        (reach / scale[1]).floor() as i64 + 1,
    ];
    // Halo points from neighbouring files: within the halo of this file's extent.
    let total = n + foreign_halo(
        input,
        &header,
        p,
        lo,
        hi,
        halo,
        &mut xyz,
        ground.as_mut(),
        &mut report,
    )?;
    let xyz = xyz.into_inner().map_err(|e| e.into_error())?;
    drop(xyz);
    if let Some(g) = ground.take() {
        drop(g.into_inner().map_err(|e| e.into_error())?);
    }

    log::info!(
        "{}: positions pass {:.2} s, peak RSS so far {} MiB",
        input.display(),
        t0.elapsed().as_secs_f64(),
        membudget::monitor::peak_rss().unwrap_or(0) >> 20
    );
    let t0 = std::time::Instant::now();
    // 2. Tiling.
    let mut hlo = [lo[0], lo[1]];
    let mut hhi = [hi[0], hi[1]];
    if total > n {
        // Foreign points may lie outside this file's extent: the histogram covers them.
        for_each_point(&xyz_path, |_, q| {
            hlo = [hlo[0].min(i64::from(q[0])), hlo[1].min(i64::from(q[1]))];
            hhi = [hhi[0].max(i64::from(q[0])), hhi[1].max(i64::from(q[1]))];
            Ok(())
        })?;
    }
    let mut hist = Histogram::new(hlo, hhi, scale, p.radius, total);
    for_each_point(&xyz_path, |_, q| {
        hist.add(q[0], q[1]);
        Ok(())
    })?;
    report.histogram = hist.dims();
    let tiling = Tiling::plan(hist, halo, p.capacity)?;
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

    log::info!(
        "{}: tiling {:.2} s",
        input.display(),
        t0.elapsed().as_secs_f64()
    );
    let t0 = std::time::Instant::now();
    let mut t_collect = 0.0;
    let mut t_compute = 0.0;
    // 3. Feature passes.
    let nf = p.features.len();
    let rec = nf * 4;
    let feat_path = tmp.path().join("features");
    let feat = File::options()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&feat_path)?;
    feat.set_len(n.saturating_mul(rec as u64))?;
    let mut slot_of = vec![u32::MAX; tiling.tiles.len()];
    for g in groups {
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
                    halo: Vec::with_capacity(tile.held_bound.saturating_sub(tile.owned) as usize),
                    ground: Vec::new(),
                }
            })
            .collect();
        for (k, t) in g.clone().enumerate() {
            slot_of[t] = k as u32;
        }
        let tc = std::time::Instant::now();
        for_each_point(&xyz_path, |i, q| {
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
        })?;
        if p.ground_radius.is_some() {
            // Ground points go to every tile of the pass whose halo box holds them.
            for_each_point(&ground_path, |_, q| {
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
        for b in bufs.iter_mut() {
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
            let values = tile_features(&owned, halo, ground, &header, p);
            drop(owned);
            write_runs(&feat, &index, &values, rec)?;
            if membudget::cli::interrupted() {
                return Err(Error::new(ErrorKind::Io, "interrupted"));
            }
        }
        t_compute += tc.elapsed().as_secs_f64();
    }
    log::info!(
        "{}: feature passes {:.2} s (collect {t_collect:.2} s, compute {t_compute:.2} s, cpu so far {:.2} s), peak RSS so far {} MiB",
        input.display(),
        t0.elapsed().as_secs_f64(),
        cpu_seconds(),
        membudget::monitor::peak_rss().unwrap_or(0) >> 20
    );
    let t0 = std::time::Instant::now();

    // 4. Merge pass.
    let mut recs = BufReader::with_capacity(1 << 20, File::open(&rec_path)?);
    let codec = las::WriterOptions::default().with_laz_parallelism(if p.parallel_codec {
        las::LazParallelism::Yes
    } else {
        las::LazParallelism::No
    });
    let mut writer = Writer::with_options(
        BufWriter::with_capacity(1 << 20, out.try_clone()?),
        out_header,
        codec,
    )
    .map_err(|e| las_error(input, e))?;
    let out_fmt = *writer.header().point_format();
    let mut feats = BufReader::with_capacity(1 << 20, File::open(&feat_path)?);
    let out_len = in_len + rec;
    let mut fbuf = Vec::new();
    let mut rbuf = Vec::new();
    let mut done = 0u64;
    while done < n {
        let got = p.slab.min(n - done);
        rbuf.resize(got as usize * in_len, 0);
        recs.read_exact(&mut rbuf)?;
        fbuf.resize(got as usize * rec, 0);
        feats.read_exact(&mut fbuf)?;
        let mut bytes = Vec::with_capacity(got as usize * out_len);
        for (r, f) in rbuf.chunks_exact(in_len).zip(fbuf.chunks_exact(rec)) {
            bytes.extend_from_slice(r);
            bytes.extend_from_slice(f);
        }
        let slab = PointDataBuilder::new()
            .with_format(out_fmt)
            .with_transforms(*header.transforms())
            .build_from_bytes(bytes)
            .map_err(|e| las_error(input, e))?;
        writer
            .write_points(&slab)
            .map_err(|e| las_error(input, e))?;
        done += got;
    }
    writer.close().map_err(|e| las_error(input, e))?;
    log::info!(
        "{}: merge pass {:.2} s",
        input.display(),
        t0.elapsed().as_secs_f64()
    );
    Ok(report)
}

/// Features of the owned points of one tile, `rec / 4` f32 per point in owned order.
fn tile_features(
    owned: &[[i32; 3]],
    halo: Vec<[i32; 3]>,
    ground: Vec<[i32; 3]>,
    header: &Header,
    p: &Params,
) -> Vec<f32> {
    let scale = scales(header);
    let off = offsets(header);
    let t = std::time::Instant::now();
    let grid = {
        let mut all = halo;
        all.extend_from_slice(owned);
        Grid::build(&all, scale, p.radius)
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
    let mut values = vec![0f32; owned.len() * nf];
    values
        .par_chunks_mut(nf * 256)
        .zip(owned.par_chunks(256))
        .for_each(|(out, pts)| {
            for (o, q) in out.chunks_exact_mut(nf).zip(pts) {
                let sums = grid.radius_sums(*q);
                let at = [
                    f64::from(q[0]) * scale[0] + off[0],
                    f64::from(q[1]) * scale[1] + off[1],
                    f64::from(q[2]) * scale[2] + off[2],
                ];
                let hag = ground
                    .as_ref()
                    .and_then(|g| g.nearest_z(*q))
                    .map_or(f64::NAN, |z| f64::from(q[2] - z) * scale[2]);
                evaluate(
                    &p.features,
                    &sums,
                    scale,
                    p.radius,
                    at,
                    p.orientation,
                    hag,
                    o,
                );
            }
        });
    values
}

/// Write feature records at their point indices, one write per run of consecutive
/// indices (points of a tile come in scan order, so runs are long).
fn write_runs(file: &File, index: &[u64], values: &[f32], rec: usize) -> Result<(), Error> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut start = 0usize;
    while start < index.len() {
        let mut end = start + 1;
        while end < index.len() && index[end] == index[end - 1] + 1 && (end - start) * rec < 1 << 20
        {
            end += 1;
        }
        buf.clear();
        for v in &values[start * rec / 4..end * rec / 4] {
            buf.extend_from_slice(&v.to_le_bytes());
        }
        file.write_all_at(&buf, index[start] * rec as u64)?;
        start = end;
    }
    Ok(())
}

/// Append one position (12 bytes) to a positions file.
fn write_xyz(w: &mut impl Write, q: [i32; 3]) -> Result<(), Error> {
    w.write_all(&q[0].to_le_bytes())?;
    w.write_all(&q[1].to_le_bytes())?;
    w.write_all(&q[2].to_le_bytes())?;
    Ok(())
}

/// Append a slab's ground points (class 2) to a positions file.
fn write_ground(w: &mut impl Write, pd: &las::PointData) -> Result<(), Error> {
    for (q, class) in slab_xyz(pd).zip(pd.classification()) {
        if class == 2 {
            write_xyz(w, q)?;
        }
    }
    Ok(())
}

/// Call `f(index, xyz)` for every point of a positions file, in order.
fn for_each_point(
    path: &Path,
    mut f: impl FnMut(u64, [i32; 3]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut buf = vec![0u8; 12 * 8192];
    let mut i = 0u64;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let k = r.read(&mut buf[filled..])?;
            if k == 0 {
                break;
            }
            filled += k;
        }
        for c in buf[..filled - filled % 12].chunks_exact(12) {
            let q = [
                i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
                i32::from_le_bytes([c[4], c[5], c[6], c[7]]),
                i32::from_le_bytes([c[8], c[9], c[10], c[11]]),
            ];
            f(i, q)?;
            i += 1;
        }
        if filled < buf.len() {
            return Ok(());
        }
    }
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
    mut ground: Option<&mut BufWriter<File>>,
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
        let mut r = match open_with(path, p.parallel_codec) {
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

/// User plus system CPU seconds of this process so far (for `-v` timings).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0.0;
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}
