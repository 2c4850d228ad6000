//! The fixed-size record files of the pipeline, in its scratch directory, all
//! little-endian:
//!
//! - **positions**: a point's stored X, Y, Z (`i32` each, 12 bytes), in file order: the
//!   input's points, then the halo points of neighbouring files, or ground points;
//! - **pass files** ([`bucket_by_pass`]): index (`u64`) and position, 20 bytes a point;
//! - **features**: one `f32` per feature, the record of point `i` at `i * record`
//!   ([`write_runs`]).
//!
//! Written through [`PassWriter`] and read sequentially with [`ReadBehind`], so they
//! leave the page cache behind the pass (see [`crate::cache`]).

use crate::cache::{PassWriter, ReadBehind};
use crate::tiling::{in_box, Tiling};
use membudget::Error;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// Stored coordinates of a slab's points.
pub(crate) fn slab_xyz(pd: &las::PointData) -> impl Iterator<Item = [i32; 3]> + '_ {
    pd.x_raw()
        .zip(pd.y_raw())
        .zip(pd.z_raw())
        .map(|((x, y), z)| [x, y, z])
}

/// Write feature records at their point indices, one write per run of consecutive
/// indices (points of a tile come in scan order, so runs are long).
pub(crate) fn write_runs(
    file: &File,
    index: &[u64],
    values: &[f32],
    rec: usize,
) -> Result<(), Error> {
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
pub(crate) fn write_xyz(w: &mut impl Write, q: [i32; 3]) -> Result<(), Error> {
    w.write_all(&q[0].to_le_bytes())?;
    w.write_all(&q[1].to_le_bytes())?;
    w.write_all(&q[2].to_le_bytes())?;
    Ok(())
}

/// Append a slab's ground points (class 2) to a positions file.
pub(crate) fn write_ground(w: &mut impl Write, pd: &las::PointData) -> Result<(), Error> {
    for (q, class) in slab_xyz(pd).zip(pd.classification()) {
        if class == 2 {
            write_xyz(w, q)?;
        }
    }
    Ok(())
}

/// Most passes [`bucket_by_pass`] writes a file for at once (a buffer each).
pub(crate) const MAX_BUCKETS: usize = 64;

/// Write, for each pass (group of tiles), a file of the points its tiles own or hold
/// in their halo: index (u64) and position, 20 bytes a point, in file order. A point
/// goes once to each pass that needs it.
pub(crate) fn bucket_by_pass(
    xyz_path: &Path,
    dir: &Path,
    tiling: &Tiling,
    groups: &[std::ops::Range<usize>],
) -> Result<Vec<PathBuf>, Error> {
    let mut group_of = vec![0u32; tiling.tiles.len()];
    for (k, g) in groups.iter().enumerate() {
        for t in g.clone() {
            group_of[t] = k as u32;
        }
    }
    let paths: Vec<PathBuf> = (0..groups.len())
        .map(|k| dir.join(format!("pass-{k}")))
        .collect();
    let mut files = paths
        .iter()
        .map(|p| Ok(PassWriter::new(1 << 15, File::create(p)?)))
        .collect::<Result<Vec<_>, Error>>()?;
    // The last point written to each pass, so a point near several of its tiles is
    // written once.
    let mut last = vec![u64::MAX; groups.len()];
    for_each_point(xyz_path, |i, q| {
        let (cell, own) = tiling.owner(q[0], q[1]);
        let mut put = |k: u32| -> Result<(), Error> {
            let k = k as usize;
            if last[k] != i {
                last[k] = i;
                let w = &mut files[k];
                w.write_all(&i.to_le_bytes())?;
                write_xyz(w, q)?;
            }
            Ok(())
        };
        put(group_of[own as usize])?;
        for &t in tiling.near(cell) {
            if in_box(&tiling.tiles[t as usize].halo_box, q[0], q[1]) {
                put(group_of[t as usize])?;
            }
        }
        Ok(())
    })?;
    for f in files {
        drop(f.finish()?);
    }
    Ok(paths)
}

/// Call `f` with every `N`-byte record of `path` (`N` bytes), in order.
fn for_each_record<const N: usize>(
    path: &Path,
    mut f: impl FnMut(&[u8]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path)?);
    let mut buf = vec![0u8; N * 8192];
    let mut behind = ReadBehind::default();
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            let k = r.read(&mut buf[filled..])?;
            if k == 0 {
                break;
            }
            filled += k;
        }
        behind.consumed(r.get_ref(), filled);
        for c in buf[..filled].chunks_exact(N) {
            f(c)?;
        }
        if filled < buf.len() {
            behind.done(r.get_ref());
            return Ok(());
        }
    }
}

/// The position in 12 bytes.
fn xyz_at(c: &[u8]) -> [i32; 3] {
    [
        i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        i32::from_le_bytes([c[4], c[5], c[6], c[7]]),
        i32::from_le_bytes([c[8], c[9], c[10], c[11]]),
    ]
}

/// Call `f(index, xyz)` for every point of a [`bucket_by_pass`] file, in order.
pub(crate) fn for_each_indexed(
    path: &Path,
    mut f: impl FnMut(u64, [i32; 3]) -> Result<(), Error>,
) -> Result<(), Error> {
    for_each_record::<20>(path, |c| {
        let i = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        f(i, xyz_at(&c[8..]))
    })
}

/// Call `f(index, xyz)` for every point of a positions file, in order.
pub(crate) fn for_each_point(
    path: &Path,
    mut f: impl FnMut(u64, [i32; 3]) -> Result<(), Error>,
) -> Result<(), Error> {
    let mut i = 0u64;
    for_each_record::<12>(path, |c| {
        f(i, xyz_at(c))?;
        i += 1;
        Ok(())
    })
}
