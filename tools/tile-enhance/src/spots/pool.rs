//! The strongest local maxima of the first pass (the automatic threshold's), kept so that
//! the second pass need not compute the responses again: when every maximum above the
//! threshold the histograms give is among them, the spots are known after one pass and
//! the second only reads the channels out.
//!
//! The pool keeps the strongest maxima: when it holds `2 cap`, only the strongest `cap`
//! stay, and from then on a maximum enters only above the strongest left out (the floor).
//! So the pool holds every maximum above `t` when the floor is at or below `t`. Which of several equal responses is held can depend on
//! the workers' timing, but the spots above `t` cannot: when the pool is not complete the
//! second pass detects again, exactly as with a given threshold.

use super::Spot;
use std::sync::atomic::{AtomicU32, Ordering as AtomicOrdering};
use std::sync::Mutex;

/// Bytes the pool holds per maximum (for the cost model).
pub const BYTES_PER_SPOT: u64 = std::mem::size_of::<Spot>() as u64;

/// See the module documentation.
pub struct Pool {
    cap: usize,
    /// Up to twice `cap` maxima: at twice, the strongest `cap` are kept.
    held: Mutex<Vec<Spot>>,
    /// The bits of the strongest response ever left out (0 before; responses are positive,
    /// so their bits order as their values): a worker drops a maximum at or below it
    /// before taking the lock.
    floor: AtomicU32,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool(cap {})", self.cap)
    }
}

/// Maxima a worker gathers before taking the pool's lock.
pub const BATCH: usize = 4096;

impl Pool {
    /// A pool of at most `cap` maxima (at least 1), holding at most `2 cap` at a time,
    /// with room reserved for `2 expect` (the allocation is touched only as it fills).
    pub fn new(cap: usize, expect: usize) -> Pool {
        let cap = cap.max(1);
        Pool {
            cap,
            held: Mutex::new(Vec::with_capacity(2 * expect.min(cap))),
            floor: AtomicU32::new(0),
        }
    }

    /// Whether a response could enter the pool.
    pub fn wants(&self, response: f32) -> bool {
        response.to_bits() > self.floor.load(AtomicOrdering::Relaxed)
    }

    /// Offer local maxima with positive responses; `batch` is emptied.
    pub fn offer(&self, batch: &mut Vec<Spot>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        for s in batch.drain(..) {
            debug_assert!(s.response > 0.0);
            if s.response.to_bits() <= self.floor.load(AtomicOrdering::Relaxed) {
                continue;
            }
            held.push(s);
            if held.len() >= 2 * self.cap {
                // Keep the strongest `cap`; the weakest kept bounds what left.
                let cap = self.cap;
                held.select_nth_unstable_by(cap - 1, |a, b| {
                    b.response.to_bits().cmp(&a.response.to_bits())
                });
                let weakest = held[cap - 1].response.to_bits();
                let left = held[cap..]
                    .iter()
                    .map(|s| s.response.to_bits())
                    .max()
                    .unwrap_or(0);
                held.truncate(cap);
                debug_assert!(left <= weakest);
                self.floor.fetch_max(left, AtomicOrdering::Relaxed);
            }
        }
    }

    /// The held maxima above `t`, in (y, x, scale) order, when they are all the image's
    /// maxima above `t` (nothing above `t` was left out).
    pub fn above(self, t: f32) -> Option<Vec<Spot>> {
        let floor = f32::from_bits(self.floor.load(AtomicOrdering::Relaxed));
        if floor > t {
            return None;
        }
        let held = self.held.into_inner().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Spot> = held.into_iter().filter(|s| s.response > t).collect();
        v.sort_by_key(|s| (s.y, s.x, s.scale));
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spot(i: u32, r: f32) -> Spot {
        Spot {
            y: i,
            x: 0,
            scale: 0,
            response: r,
            dy: 0.0,
            dx: 0.0,
            value: 0.0,
        }
    }

    #[test]
    fn complete_only_when_nothing_above_t_was_dropped() {
        let fill = || {
            let p = Pool::new(3, 3);
            let rs = [5.0, 1.0, 9.0, 2.0, 7.0, 3.0, 0.5, 8.0];
            let mut b: Vec<Spot> = (0..rs.len()).map(|i| spot(i as u32, rs[i])).collect();
            p.offer(&mut b);
            assert!(b.is_empty());
            p
        };
        // At 6 held, 9 7 5 stay (1 2 3 leave, floor 3); 0.5 is dropped, 8 enters.
        let got = fill().above(4.0).expect("complete above 4");
        assert_eq!(
            got.iter().map(|s| s.response).collect::<Vec<_>>(),
            vec![5.0, 9.0, 7.0, 8.0]
        );
        assert_eq!(fill().above(3.0).map(|v| v.len()), Some(4));
        // 3 was left out and is above 2.5: not complete.
        assert!(fill().above(2.5).is_none());
        let p = Pool::new(10, 0);
        p.offer(&mut vec![spot(0, 1.0)]);
        assert_eq!(p.above(0.5).map(|v| v.len()), Some(1));
    }

    #[test]
    fn equal_responses_at_the_floor() {
        let fill = || {
            let p = Pool::new(2, 2);
            p.offer(&mut (0..5).map(|i| spot(i, 4.0)).collect());
            p
        };
        // Left-out maxima equal the weakest held: complete for t >= 4 only.
        assert_eq!(fill().above(4.0).map(|v| v.len()), Some(0));
        assert!(fill().above(3.9).is_none());
    }
}
