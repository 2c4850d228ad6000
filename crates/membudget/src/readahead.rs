//! One read-ahead pool for every tool: a helper thread fills buffers taken from a small
//! pool (decoding the next band of an image, the next slab of points) while the calling
//! thread works on the previous one; a buffer goes back to the pool when the caller drops
//! it. Memory in flight is the pool's buffers, by construction: the helper can never run
//! more than the pool's size ahead.
//!
//! ```
//! use membudget::readahead::read_ahead;
//! let mut next = 0u32;
//! let total: u32 = read_ahead(
//!     vec![Vec::new(), Vec::new()],
//!     move |buf: &mut Vec<u32>| -> Result<bool, ()> {
//!         if next == 5 {
//!             return Ok(false);
//!         }
//!         buf.clear();
//!         buf.extend(next * 10..next * 10 + 10);
//!         next += 1;
//!         Ok(true)
//!     },
//!     |filled| filled.map(|b| b.unwrap().iter().sum::<u32>()).sum(),
//! )
//! .unwrap();
//! assert_eq!(total, (0..50u32).sum::<u32>());
//! ```

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

/// A filled buffer lent to the caller; dropped, it goes back to the pool to be filled
/// again (or is freed when the run is over). Share it between threads in an `Arc`: it
/// returns when the last holder drops it.
pub struct Pooled<T> {
    item: Option<T>,
    home: SyncSender<T>,
}

impl<T> Deref for Pooled<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // `item` is only taken in `drop`.
        self.item.as_ref().unwrap_or_else(|| unreachable!())
    }
}

impl<T> DerefMut for Pooled<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().unwrap_or_else(|| unreachable!())
    }
}

impl<T> Drop for Pooled<T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            // The pool may be gone (the run ended or failed): the buffer is just freed.
            let _ = self.home.try_send(item);
        }
    }
}

impl<T> fmt::Debug for Pooled<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pooled")
    }
}

/// The filled buffers, in the order the helper filled them. Ends after the helper's last
/// buffer, or after its error (an `Err` item). Dropping it stops the helper.
pub struct Filled<T, E> {
    rx: Receiver<Result<T, E>>,
    home: SyncSender<T>,
    stop: Arc<AtomicBool>,
}

impl<T, E> Iterator for Filled<T, E> {
    type Item = Result<Pooled<T>, E>;
    fn next(&mut self) -> Option<Self::Item> {
        let r = self.rx.recv().ok()?;
        Some(r.map(|item| Pooled {
            item: Some(item),
            home: self.home.clone(),
        }))
    }
}

impl<T, E> Drop for Filled<T, E> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl<T, E> fmt::Debug for Filled<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Filled")
    }
}

/// Run `consume` over the buffers a helper thread fills with `fill`, from a pool of
/// `buffers` (two let reading overlap processing; one reads then processes).
///
/// `fill` fills one buffer and returns `Ok(true)`, or `Ok(false)` when there is nothing
/// more to read; after an `Err` the helper stops. `consume` must not keep a [`Pooled`]
/// beyond its return (the helper waits for buffers to come back or for the pool to
/// close). A panic in the helper is raised again here when `consume` returns. Fails only
/// when the helper thread cannot be started.
pub fn read_ahead<T, E, F, C, R>(buffers: Vec<T>, fill: F, consume: C) -> std::io::Result<R>
where
    T: Send,
    E: Send,
    F: FnMut(&mut T) -> Result<bool, E> + Send,
    C: FnOnce(Filled<T, E>) -> R,
{
    read_ahead_with(buffers, move || Ok(fill), consume)
}

/// [`read_ahead`] for a reader that cannot move between threads (a decoder holding
/// `Rc`s or raw pointers): `open` runs on the helper thread and returns the `fill`
/// function there; its error is the stream's only item.
pub fn read_ahead_with<T, E, O, F, C, R>(buffers: Vec<T>, open: O, consume: C) -> std::io::Result<R>
where
    T: Send,
    E: Send,
    O: FnOnce() -> Result<F, E> + Send,
    F: FnMut(&mut T) -> Result<bool, E>,
    C: FnOnce(Filled<T, E>) -> R,
{
    let n = buffers.len().max(1);
    let (free_tx, free_rx) = sync_channel::<T>(n);
    for b in buffers {
        // The channel holds `n` items: never full here.
        let _ = free_tx.try_send(b);
    }
    let (full_tx, full_rx) = sync_channel::<Result<T, E>>(n);
    let stop = Arc::new(AtomicBool::new(false));
    let helper_stop = Arc::clone(&stop);
    std::thread::scope(|s| {
        let helper = std::thread::Builder::new()
            .name("read-ahead".into())
            .spawn_scoped(s, move || {
                let mut fill = match open() {
                    Ok(f) => f,
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        return;
                    }
                };
                // Ends when the pool closes (the caller and every lent buffer are gone),
                // the caller stopped, the input ended or failed.
                while let Ok(mut b) = free_rx.recv() {
                    if helper_stop.load(Ordering::Relaxed) {
                        return;
                    }
                    match fill(&mut b) {
                        Ok(true) => {
                            if full_tx.send(Ok(b)).is_err() {
                                return;
                            }
                        }
                        Ok(false) => return,
                        Err(e) => {
                            let _ = full_tx.send(Err(e));
                            return;
                        }
                    }
                }
            });
        let filled = Filled {
            rx: full_rx,
            home: free_tx,
            stop,
        };
        // The OS may refuse a thread (a process at its limit): an error, not a panic.
        helper.map(|_| consume(filled))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn order_and_end() {
        let mut i = 0;
        let got: Vec<u32> = read_ahead(
            vec![0u32; 2],
            move |b| {
                i += 1;
                *b = i;
                Ok::<_, ()>(i <= 100)
            },
            |f| f.map(|b| *b.unwrap()).collect(),
        )
        .unwrap();
        // The 101st fill said "no more": its buffer is not handed out.
        assert_eq!(got, (1..=100).collect::<Vec<_>>());
    }

    #[test]
    fn never_more_than_the_pool_in_flight() {
        let live = AtomicUsize::new(0);
        let most = AtomicUsize::new(0);
        let mut left = 50;
        read_ahead(
            vec![(), (), ()],
            |_| {
                if left == 0 {
                    return Ok::<_, ()>(false);
                }
                left -= 1;
                let now = live.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                Ok(true)
            },
            |f| {
                for b in f {
                    std::thread::sleep(std::time::Duration::from_micros(200));
                    live.fetch_sub(1, Ordering::SeqCst);
                    drop(b);
                }
            },
        )
        .unwrap();
        assert!(most.load(Ordering::SeqCst) <= 3);
    }

    #[test]
    fn error_ends_the_stream_and_early_stop_does_not_hang() {
        let mut i = 0;
        let got: Vec<Result<u32, String>> = read_ahead(
            vec![0u32; 2],
            move |b| {
                i += 1;
                *b = i;
                if i == 3 {
                    Err(format!("bad slab {i}"))
                } else {
                    Ok(true)
                }
            },
            |f| f.map(|r| r.map(|b| *b)).collect(),
        )
        .unwrap();
        assert_eq!(got, vec![Ok(1), Ok(2), Err("bad slab 3".into())]);
        // The caller stops after one buffer of an endless input: the run still ends.
        let first = read_ahead(
            vec![0u8; 2],
            |b| {
                *b = 7;
                Ok::<_, ()>(true)
            },
            |mut f| f.next().map(|b| *b.unwrap()),
        )
        .unwrap();
        assert_eq!(first, Some(7));
    }

    #[test]
    fn a_filler_made_on_the_helper_thread() {
        // An `Rc` cannot cross threads: the filler holding one is made on the helper.
        let got: Vec<u32> = read_ahead_with(
            vec![0u32; 2],
            || {
                let left = std::rc::Rc::new(std::cell::Cell::new(3u32));
                Ok::<_, String>(move |b: &mut u32| {
                    *b = left.get();
                    left.set(left.get().saturating_sub(1));
                    Ok(*b > 0)
                })
            },
            |f| f.map(|b| *b.unwrap()).collect(),
        )
        .unwrap();
        assert_eq!(got, vec![3, 2, 1]);
        let failed: Vec<Result<u32, String>> = read_ahead_with(
            vec![0u32; 2],
            || Err::<fn(&mut u32) -> Result<bool, String>, _>("cannot open".to_string()),
            |f| f.map(|r| r.map(|b| *b)).collect(),
        )
        .unwrap();
        assert_eq!(failed, vec![Err("cannot open".to_string())]);
    }

    #[test]
    fn shared_buffer_returns_when_the_last_holder_drops() {
        let mut i = 0u32;
        let sums: Vec<u32> = read_ahead(
            vec![Vec::new()],
            move |b: &mut Vec<u32>| {
                if i == 4 {
                    return Ok::<_, ()>(false);
                }
                i += 1;
                *b = vec![i; 3];
                Ok(true)
            },
            |f| {
                f.map(|b| {
                    let b = Arc::new(b.unwrap());
                    let other = Arc::clone(&b);
                    let s = std::thread::spawn(move || other.iter().sum::<u32>())
                        .join()
                        .unwrap();
                    s + b[0]
                })
                .collect()
            },
        )
        .unwrap();
        assert_eq!(sums, vec![4, 8, 12, 16]);
    }
}
