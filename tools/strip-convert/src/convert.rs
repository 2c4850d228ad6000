//! One page to one JP2 file, streaming: a reader thread decodes the TIFF band by band (a
//! band is one row of JPEG 2000 tiles), worker threads cut tiles out of the band and encode
//! them, and the calling thread writes the encoded tiles in order behind the JP2 boxes.
//!
//! Memory in flight, by construction: `bands` decoded bands (a pool of buffers reused from
//! band to band; 2 lets decoding overlap encoding), one tile of samples and one OpenJPEG
//! working set per worker, and at most `2 x workers` encoded tiles waiting to be written
//! (workers never run further ahead of the writer).

use crate::encode::{self, EncodeParams, EncodedTile};
use crate::jp2;
use membudget::readahead::{read_ahead, Filled, Pooled};
use membudget::{Error, ErrorKind};
use raster::tiff::TiffPage;
use raster::Band;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};

/// How to run one conversion.
#[derive(Debug, Clone)]
pub struct Run {
    /// Worker threads encoding tiles side by side.
    pub workers: usize,
    /// OpenJPEG threads inside each tile's codec (used when there are fewer tiles than
    /// workers).
    pub codec_threads: usize,
    /// Decoded bands in flight (1: read then encode; 2: read the next band while encoding).
    pub bands: usize,
    /// Write TLM markers in the main header.
    pub tlm: bool,
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct Written {
    /// Bytes of the JP2 file.
    pub bytes: u64,
    /// Bytes of the codestream.
    pub codestream_bytes: u64,
}

/// A band lent by the read-ahead pool; it goes back to the pool when the last tile is
/// cut out of it (the last `Arc` holder drops it).
type PooledBand = Pooled<Band>;

/// The tiles handed out so far, shared by the workers.
struct Jobs {
    full: Option<Filled<Band, Error>>,
    current: Option<Arc<PooledBand>>,
    /// Next tile index to hand out.
    next: u32,
    /// Tiles written so far (the writer advances it).
    written: u32,
    /// Tiles across a band.
    across: u32,
    total: u32,
    window: u32,
}

enum Take {
    Tile(u32, Arc<PooledBand>),
    Done,
    Failed(Error),
}

/// Convert the page to a JP2 written into `file` (positioned at its start).
pub fn convert(
    page: &mut TiffPage,
    params: &EncodeParams,
    header: &jp2::Header,
    run: &Run,
    file: &mut File,
) -> Result<Written, Error> {
    let (across, down) = params.tile_grid();
    let total = across * down;
    let raw = u64::from(params.width)
        * u64::from(params.height)
        * u64::from(params.comps)
        * params.sample_bytes() as u64;
    // A lossless codestream can exceed the raw size a little on noise; past 3 GiB of raw
    // samples the 64-bit form is used so the length always fits.
    let large = raw + raw / 4 + (1 << 20) >= u64::from(u32::MAX);

    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&jp2::leading_boxes(header))?;
    let jp2c_at = out.stream_position()?;
    out.write_all(&vec![0u8; jp2::jp2c_header_len(large)])?;
    let mut main = encode::main_header(params)?;
    let parts_per_tile = match params.tileparts {
        None => 1,
        Some(encode::TileParts::Resolution) => u32::from(params.levels) + 1,
        Some(encode::TileParts::Layer) => params.quality.layers(),
        Some(encode::TileParts::Component) => u32::from(params.comps),
    };
    let tlm_entries = if run.tlm {
        (total as usize) * parts_per_tile as usize
    } else {
        0
    };
    let tlm_at = main.len();
    main.extend_from_slice(&tlm_placeholder(tlm_entries));
    let cs_start = out.stream_position()?;
    out.write_all(&main)?;
    let mut tlm: Vec<(u16, u32)> = Vec::with_capacity(tlm_entries);

    let abort = AtomicBool::new(false);
    let bands_n = run.bands.max(1);
    let workers = run.workers.max(1);
    let turn = Condvar::new();
    let (res_tx, res_rx) = mpsc::channel::<Result<EncodedTile, Error>>();
    let tile_h = params.tile.1;
    let height = params.height;

    // Reader: one band per row of tiles, read ahead into buffers from the pool.
    let mut row = 0;
    let fill = |band: &mut Band| -> Result<bool, Error> {
        if row >= down || abort.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let y0 = row * tile_h;
        read_band(page, y0, tile_h.min(height - y0), band)?;
        row += 1;
        Ok(true)
    };
    let bands = (0..bands_n).map(|_| Band::default()).collect();
    let result = read_ahead(bands, fill, |filled| {
        let jobs = Mutex::new(Jobs {
            full: Some(filled),
            current: None,
            next: 0,
            written: 0,
            across,
            total,
            window: 2 * workers as u32,
        });
        std::thread::scope(|scope| -> Result<(), Error> {
            for _ in 0..workers {
                let (jobs, turn, abort, res_tx) = (&jobs, &turn, &abort, res_tx.clone());
                scope.spawn(move || {
                    let mut buf = Vec::new();
                    loop {
                        let (index, band) = match take(jobs, turn, abort) {
                            Take::Tile(i, b) => (i, b),
                            Take::Done => return,
                            Take::Failed(e) => {
                                let _ = res_tx.send(Err(e));
                                return;
                            }
                        };
                        let (x0, _, x1, _) = params.tile_rect(index);
                        band.tile(x0, x1, &mut buf);
                        // The band goes back to the pool as soon as its last tile is cut.
                        drop(band);
                        let r = encode::encode_tile(params, index, &mut buf, run.codec_threads);
                        let failed = r.is_err();
                        if res_tx.send(r).is_err() || failed {
                            abort.store(true, Ordering::Relaxed);
                            turn.notify_all();
                            return;
                        }
                    }
                });
            }
            drop(res_tx);

            // Writer: tiles in index order.
            let mut pending: BTreeMap<u32, EncodedTile> = BTreeMap::new();
            let mut next = 0u32;
            let stop = |e: Error| {
                abort.store(true, Ordering::Relaxed);
                if let Ok(mut j) = jobs.lock() {
                    j.full = None;
                    j.current = None;
                }
                turn.notify_all();
                e
            };
            while next < total {
                let Ok(r) = res_rx.recv() else {
                    return Err(stop(Error::new(
                        ErrorKind::Internal,
                        "encoder threads ended before the last tile",
                    )));
                };
                let t = r.map_err(stop)?;
                pending.insert(t.index, t);
                while let Some(t) = pending.remove(&next) {
                    if t.parts.len() as u32 != parts_per_tile && run.tlm {
                        return Err(stop(Error::new(
                            ErrorKind::Internal,
                            format!(
                                "tile {next}: {} tile-parts, {parts_per_tile} expected",
                                t.parts.len()
                            ),
                        )));
                    }
                    if run.tlm {
                        tlm.extend(t.parts.iter().map(|&p| (next as u16, p)));
                    }
                    out.write_all(&t.bytes).map_err(|e| stop(e.into()))?;
                    next += 1;
                    if let Ok(mut j) = jobs.lock() {
                        j.written = next;
                    }
                    turn.notify_all();
                }
            }
            Ok(())
        })
    });
    result.map_err(|e| {
        Error::new(
            ErrorKind::Internal,
            format!("cannot start the band reader thread: {e}"),
        )
    })??;
    out.write_all(&[0xFF, 0xD9])?;
    let end = out.stream_position()?;
    let cs_len = end - cs_start;
    let hdr = jp2::jp2c_header(cs_len, large).ok_or_else(|| {
        Error::new(
            ErrorKind::Internal,
            "codestream passed 4 GiB with a 32-bit jp2c header",
        )
    })?;
    out.seek(SeekFrom::Start(jp2c_at))?;
    out.write_all(&hdr)?;
    if run.tlm {
        out.seek(SeekFrom::Start(cs_start + tlm_at as u64))?;
        out.write_all(&tlm_segments(&tlm))?;
    }
    out.flush()?;
    Ok(Written {
        bytes: end,
        codestream_bytes: cs_len,
    })
}

/// Rows `y0 .. y0 + rows` of the page into `band`.
fn read_band(page: &mut TiffPage, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
    page.read_band(y0, rows, band)?;
    // Test builds only: a deliberately wrong conversion (the top bit of one sample
    // flipped in every band), for the test that shows --verify does not trust the
    // converter's reader.
    #[cfg(debug_assertions)]
    if std::env::var_os("STRIP_CONVERT_TEST_WRONG_SAMPLES").is_some() {
        let top = 1u16 << (page.info.prec.clamp(1, 16) - 1);
        if let Some(p) = band.planes.first_mut() {
            if band.sample_bytes == 1 {
                p[0] ^= top as u8;
            } else {
                let v = u16::from_ne_bytes([p[0], p[1]]) ^ top;
                p[..2].copy_from_slice(&v.to_ne_bytes());
            }
        }
    }
    Ok(())
}

/// Hand out the next tile, waiting for the band to be read or for the writer to catch up.
fn take(jobs: &Mutex<Jobs>, turn: &Condvar, abort: &AtomicBool) -> Take {
    let Ok(mut j) = jobs.lock() else {
        return Take::Done;
    };
    loop {
        if abort.load(Ordering::Relaxed) || j.next >= j.total {
            j.current = None;
            return Take::Done;
        }
        if j.next >= j.written + j.window {
            j = match turn.wait(j) {
                Ok(g) => g,
                Err(_) => return Take::Done,
            };
            continue;
        }
        let index = j.next;
        if index % j.across == 0 || j.current.is_none() {
            // First tile of a band: the next band from the reader.
            j.current = None;
            let Some(filled) = &mut j.full else {
                return Take::Done;
            };
            match filled.next() {
                Some(Ok(b)) => j.current = Some(Arc::new(b)),
                Some(Err(e)) => {
                    abort.store(true, Ordering::Relaxed);
                    j.full = None;
                    turn.notify_all();
                    return Take::Failed(e);
                }
                None => return Take::Done,
            }
        }
        j.next += 1;
        let band = j.current.clone().expect("band set above");
        if j.next % j.across == 0 {
            // Last tile of this band handed out: drop the shared reference.
            j.current = None;
        }
        return Take::Tile(index, band);
    }
}

/// Bytes of TLM marker segments for `entries` tile-parts (zeros, patched at the end).
fn tlm_placeholder(entries: usize) -> Vec<u8> {
    if entries == 0 {
        return Vec::new();
    }
    tlm_segments(&vec![(0u16, 0u32); entries])
}

/// TLM marker segments (ISO 15444-1 A.7.1): 16-bit tile index and 32-bit tile-part length
/// per entry, at most 10921 entries per segment.
fn tlm_segments(entries: &[(u16, u32)]) -> Vec<u8> {
    const PER: usize = (65535 - 4) / 6;
    let mut v = Vec::new();
    for (z, chunk) in entries.chunks(PER).enumerate() {
        v.extend_from_slice(&[0xFF, 0x55]);
        v.extend_from_slice(&((4 + 6 * chunk.len()) as u16).to_be_bytes());
        v.push(z as u8);
        v.push(0x60); // ST = 2 (16-bit Ttlm), SP = 1 (32-bit Ptlm)
        for &(t, p) in chunk {
            v.extend_from_slice(&t.to_be_bytes());
            v.extend_from_slice(&p.to_be_bytes());
        }
    }
    v
}
