//! Read-ahead for a [`RowSource`]: its next rows are decoded on membudget's read-ahead
//! helper ([`membudget::readahead`]) while the caller filters the previous ones, so
//! decoding and filtering no longer take turns. Memory added: [`AHEAD_BUFFERS`] buffers
//! of [`AHEAD_ROWS`] rows.

use crate::{Band, Geometry, RowSource};
use membudget::readahead::{read_ahead_with, Filled, Pooled};
use membudget::{Error, ErrorKind};

/// Rows decoded per read-ahead buffer (as many as the window reads at once).
pub const AHEAD_ROWS: u32 = crate::window::READ_ROWS;
/// Buffers in the pool: one being filled while the other is read.
pub const AHEAD_BUFFERS: usize = 2;

/// Run `f` over the source `open` gives (of geometry `g`), its rows decoded ahead on the
/// read-ahead helper. `open` runs on the helper, so the source need not move between
/// threads. `f` must read its rows in order (bands may overlap none and skip none, as
/// [`crate::Window`] and a writer's loop ask for them).
pub fn with_read_ahead<S, O, F, R>(g: Geometry, open: O, f: F) -> Result<R, Error>
where
    S: RowSource,
    O: FnOnce() -> Result<S, Error> + Send,
    F: FnOnce(&mut Ahead) -> Result<R, Error>,
{
    with_read_ahead_buffers(g, AHEAD_BUFFERS, open, f)
}

/// [`with_read_ahead`] with `buffers` buffers of [`AHEAD_ROWS`] rows (at least 1): the
/// helper runs up to that many buffers ahead, so a caller that computes on a band of
/// rows for a while finds the next band decoded meanwhile (spot detection).
pub fn with_read_ahead_buffers<S, O, F, R>(
    g: Geometry,
    buffers: usize,
    open: O,
    f: F,
) -> Result<R, Error>
where
    S: RowSource,
    O: FnOnce() -> Result<S, Error> + Send,
    F: FnOnce(&mut Ahead) -> Result<R, Error>,
{
    let h = g.height;
    read_ahead_with(
        vec![Band::default(); buffers.max(1)],
        move || {
            let mut src = open()?;
            let mut y = 0;
            Ok(move |b: &mut Band| -> Result<bool, Error> {
                if y >= h {
                    return Ok(false);
                }
                let n = AHEAD_ROWS.min(h - y);
                src.read_band(y, n, b)?;
                y += n;
                Ok(true)
            })
        },
        |filled| {
            f(&mut Ahead {
                g,
                filled,
                cur: None,
            })
        },
    )
    .map_err(|e| {
        Error::new(
            ErrorKind::Io,
            format!("starting the read-ahead thread: {e}"),
        )
    })?
}

/// The source as the caller sees it: rows served from the helper's buffers.
#[derive(Debug)]
pub struct Ahead {
    g: Geometry,
    filled: Filled<Band, Error>,
    cur: Option<Pooled<Band>>,
}

impl RowSource for Ahead {
    fn geometry(&self) -> Geometry {
        self.g
    }

    fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
        let g = self.g;
        band.shape(y0, rows, g.width, g.comps, g.sample_bytes);
        let rl = band.row_len();
        let mut y = y0;
        while y < y0 + rows {
            let Some(cur) = self.cur.as_ref().filter(|b| y < b.y0 + b.rows) else {
                // Give the spent buffer back first, so the helper can fill it meanwhile.
                self.cur = None;
                self.cur = Some(match self.filled.next() {
                    Some(r) => r?,
                    None => {
                        return Err(Error::new(
                            ErrorKind::Internal,
                            "read-ahead: rows asked past the end",
                        ))
                    }
                });
                continue;
            };
            if y < cur.y0 || cur.planes.len() != g.comps || cur.row_len() != rl {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "read-ahead: rows asked out of order",
                ));
            }
            let from = (y - cur.y0) as usize;
            let n = (cur.y0 + cur.rows - y).min(y0 + rows - y) as usize;
            let at = (y - y0) as usize;
            for (dst, src) in band.planes.iter_mut().zip(&cur.planes) {
                dst[at * rl..(at + n) * rl].copy_from_slice(&src[from * rl..(from + n) * rl]);
            }
            y += n as u32;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Rows numbered by their index, so a misplaced row shows.
    struct Numbered(Geometry);

    impl RowSource for Numbered {
        fn geometry(&self) -> Geometry {
            self.0
        }
        fn read_band(&mut self, y0: u32, rows: u32, band: &mut Band) -> Result<(), Error> {
            if y0 + rows > self.0.height {
                return Err(Error::new(ErrorKind::Corrupt, "past the end"));
            }
            band.shape(y0, rows, self.0.width, self.0.comps, 1);
            for (c, p) in band.planes.iter_mut().enumerate() {
                for (r, row) in p.chunks_exact_mut(self.0.width as usize).enumerate() {
                    row.fill((y0 as usize + r + 7 * c) as u8);
                }
            }
            Ok(())
        }
    }

    #[test]
    fn bands_of_any_height_equal_the_source() {
        let g = Geometry {
            width: 3,
            height: 300,
            comps: 2,
            sample_bytes: 1,
        };
        for band_rows in [1u32, 7, 64, 65, 300] {
            with_read_ahead(
                g,
                || Ok(Numbered(g)),
                |src| {
                    let (mut a, mut b) = (Band::default(), Band::default());
                    let mut direct = Numbered(g);
                    let mut y = 0;
                    while y < g.height {
                        let n = band_rows.min(g.height - y);
                        src.read_band(y, n, &mut a)?;
                        direct.read_band(y, n, &mut b)?;
                        assert_eq!(a.planes, b.planes, "band {band_rows} at {y}");
                        assert_eq!((a.y0, a.rows), (y, n));
                        y += n;
                    }
                    assert!(src.read_band(y, 1, &mut a).is_err(), "read past the end");
                    Ok(())
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn errors_of_the_source_and_of_opening_reach_the_caller() {
        let g = Geometry {
            width: 2,
            height: 10,
            comps: 1,
            sample_bytes: 1,
        };
        let r = with_read_ahead(
            g,
            || -> Result<Numbered, Error> { Err(Error::new(ErrorKind::Corrupt, "bad header")) },
            |src| src.read_band(0, 1, &mut Band::default()),
        );
        assert!(r.unwrap_err().message.contains("bad header"));
        // A source shorter than it says fails at its end.
        let short = Geometry { height: 5, ..g };
        let r = with_read_ahead(
            g,
            move || Ok(Numbered(short)),
            |src| src.read_band(0, 10, &mut Band::default()),
        );
        assert!(r.unwrap_err().message.contains("past the end"));
    }
}
