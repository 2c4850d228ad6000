//! Normalisation of a sequence of frames against a reference: per-frame location (median)
//! and scale (MAD, the median of |x - median|), gathered in streaming passes, then one of
//! four linear maps x' = a x + b.
//!
//! The median and MAD are **exact** for every data type (numpy's `median`: the mean of
//! the two middle values for an even count; NaN samples are left out): a radix selection
//! over the order-preserving 64-bit key of each value, 16 bits a pass, keeps only the
//! candidates of the bucket holding the wanted rank, and once at most
//! [`COLLECT`] values remain in it they are collected and selected in memory. Memory is one
//! row block, 65,536 counters and at most [`COLLECT`] values, whatever the frame's size;
//! integer data (whose values fall into few buckets) ends in two passes, floating-point
//! data in two to four.
//!
//! Frames whose physical values are all `f32` values (BITPIX -32 unscaled, 8 and 16 with
//! an integral BZERO: what cameras write) take a shorter road to the same exact median,
//! [`median_f32`]: two passes over the file, histograms of the high then the low 16 bits
//! of each value's 32-bit key. The MAD is computed only when a method needs it
//! (`addscale`, `mulscale`, `--weighted`); otherwise the record's `scale` is null.

use clap::ValueEnum;
use membudget::Error;
use raster::fits::{FitsInfo, FitsReader};
use serde_json::{json, Value};

/// Values collected for the final in-memory selection at most (8 MiB of f64).
pub const COLLECT: usize = 1 << 20;

/// A normalisation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// x - (L_i - L_r)
    Additive,
    /// x * L_r / L_i
    Multiplicative,
    /// (S_r / S_i)(x - L_i) + L_r
    Addscale,
    /// x * (S_r / S_i)(L_r / L_i)
    Mulscale,
}

impl Method {
    /// The name as given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Additive => "additive",
            Method::Multiplicative => "multiplicative",
            Method::Addscale => "addscale",
            Method::Mulscale => "mulscale",
        }
    }
}

/// A frame's location and scale.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats {
    /// Median of the physical values.
    pub location: f64,
    /// Median absolute deviation from the median (not scaled to a sigma); NaN when not
    /// computed (no method asked for it).
    pub scale: f64,
    /// Non-NaN samples.
    pub count: u64,
}

impl Stats {
    /// As written in records.
    pub fn to_json(self) -> Value {
        json!({ "location": self.location, "scale": self.scale, "count": self.count })
    }
}

/// The map x' = a x + b normalising a frame with stats `s` to the reference `r`.
pub fn coefficients(m: Method, s: Stats, r: Stats) -> Result<(f64, f64), Error> {
    let need = |v: f64, what: &str| {
        if v == 0.0 || !v.is_finite() {
            Err(Error::unsupported(format!(
                "{} normalisation: the frame's {what} is {v}",
                m.as_str()
            )))
        } else {
            Ok(v)
        }
    };
    Ok(match m {
        Method::Additive => (1.0, -(s.location - r.location)),
        Method::Multiplicative => (r.location / need(s.location, "median")?, 0.0),
        Method::Addscale => {
            let k = r.scale / need(s.scale, "MAD")?;
            (k, r.location - k * s.location)
        }
        Method::Mulscale => (
            r.scale / need(s.scale, "MAD")? * r.location / need(s.location, "median")?,
            0.0,
        ),
    })
}

/// An order-preserving key of a (non-NaN) f64: unsigned comparison of keys is numeric
/// comparison of values (-0.0 sorts just below 0.0, which changes no median).
pub(crate) fn key(v: f64) -> u64 {
    let b = v.to_bits();
    if b >> 63 == 1 {
        !b
    } else {
        b | (1 << 63)
    }
}

/// The value of a [`key`].
pub(crate) fn unkey(k: u64) -> f64 {
    f64::from_bits(if k >> 63 == 1 { k & !(1 << 63) } else { !k })
}

/// [`key`] for an `f32`.
pub(crate) fn key32(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | (1 << 31)
    }
}

/// The value of a [`key32`].
pub(crate) fn unkey32(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & !(1 << 31) } else { !k })
}

/// Streams every value of a frame to a callback (one call per pass).
pub trait Values {
    /// Call `f` on every non-NaN value.
    fn each(&mut self, f: &mut dyn FnMut(f64)) -> Result<(), Error>;
}

/// The frames' rows read `rows` at a time as physical values.
#[derive(Debug)]
pub struct FrameValues<'a> {
    /// The frame.
    pub reader: &'a mut FitsReader,
    /// Rows per read.
    pub rows: u32,
}

impl FrameValues<'_> {
    /// Call `f` on each block of rows read as `f32` (only exact for [`exact_f32`] frames).
    fn blocks_f32(&mut self, f: &mut dyn FnMut(&[f32])) -> Result<(), Error> {
        let (w, h) = (self.reader.info().width, self.reader.info().height);
        let rows = self.rows.clamp(1, h.max(1));
        let mut buf = vec![0f32; w as usize * rows as usize];
        let mut y = 0;
        while y < h {
            let n = rows.min(h - y);
            let b = &mut buf[..w as usize * n as usize];
            self.reader.read_rows_f32(y, n, b)?;
            f(b);
            y += n;
        }
        Ok(())
    }
}

impl Values for FrameValues<'_> {
    fn each(&mut self, f: &mut dyn FnMut(f64)) -> Result<(), Error> {
        if exact_f32(self.reader.info()) {
            // Half the bytes of f64 rows, and the same values.
            return self.blocks_f32(&mut |b| {
                for &v in b {
                    if !v.is_nan() {
                        f(f64::from(v));
                    }
                }
            });
        }
        let (w, h) = (self.reader.info().width, self.reader.info().height);
        let rows = self.rows.clamp(1, h.max(1));
        let mut buf = vec![0f64; w as usize * rows as usize];
        let mut y = 0;
        while y < h {
            let n = rows.min(h - y);
            let b = &mut buf[..w as usize * n as usize];
            self.reader.read_rows_f64(y, n, b)?;
            for &v in b.iter() {
                if !v.is_nan() {
                    f(v);
                }
            }
            y += n;
        }
        Ok(())
    }
}

/// Whether every physical value of the frame is exactly an `f32` value: BITPIX -32
/// unscaled, or 8/16-bit integers with BSCALE 1 and a small integral BZERO.
pub fn exact_f32(info: &FitsInfo) -> bool {
    (info.bitpix == -32 && info.bscale == 1.0 && info.bzero == 0.0)
        || (info.small_integers() && info.bzero.abs() < f64::from(1u32 << 23))
}

/// The bucket holding rank `k` of a histogram: (bucket, values in the buckets below).
fn bucket_of(hist: &[u64], k: u64) -> Option<(usize, u64)> {
    let mut below = 0u64;
    for (i, &c) in hist.iter().enumerate() {
        if below + c > k {
            return Some((i, below));
        }
        below += c;
    }
    None
}

/// numpy's median of an [`exact_f32`] frame (NaN left out), exactly, in two passes:
/// a histogram of the high 16 bits of every value's order-preserving 32-bit key finds
/// the buckets of the two middle ranks, a histogram of the low 16 bits of the values in
/// those buckets finds the values. None when every value is NaN.
pub fn median_f32(src: &mut FrameValues) -> Result<Option<(f64, u64)>, Error> {
    let mut high = vec![0u64; 1 << 16];
    src.blocks_f32(&mut |b| {
        for &v in b {
            if !v.is_nan() {
                high[(key32(v) >> 16) as usize] += 1;
            }
        }
    })?;
    let n: u64 = high.iter().sum();
    if n == 0 {
        return Ok(None);
    }
    let changed = || {
        Error::new(
            membudget::ErrorKind::Io,
            "the frame changed while it was read",
        )
    };
    let ranks = [(n - 1) / 2, n / 2];
    let buckets = ranks.map(|k| bucket_of(&high, k));
    let [Some((b1, below1)), Some((b2, below2))] = buckets else {
        return Err(changed());
    };
    let (mut low1, mut low2) = (
        vec![0u64; 1 << 16],
        vec![0u64; if b2 != b1 { 1 << 16 } else { 0 }],
    );
    let (b1k, b2k) = (b1 as u32, b2 as u32);
    src.blocks_f32(&mut |b| {
        for &v in b {
            if v.is_nan() {
                continue;
            }
            let k = key32(v);
            if k >> 16 == b1k {
                low1[(k & 0xffff) as usize] += 1;
            } else if k >> 16 == b2k {
                low2[(k & 0xffff) as usize] += 1;
            }
        }
    })?;
    let value = |hist: &[u64], b: u32, k: u64| -> Result<f64, Error> {
        let (l, _) = bucket_of(hist, k).ok_or_else(changed)?;
        Ok(f64::from(unkey32((b << 16) | l as u32)))
    };
    let lo = value(&low1, b1k, ranks[0] - below1)?;
    let hi = if b2 == b1 {
        value(&low1, b1k, ranks[1] - below1)?
    } else {
        value(&low2, b2k, ranks[1] - below2)?
    };
    Ok(Some((lo + (hi - lo) / 2.0, n)))
}

/// Values of another source mapped through a function (|x - m| for the MAD).
struct Mapped<'a, V: Values> {
    inner: &'a mut V,
    map: &'a dyn Fn(f64) -> f64,
}

impl<V: Values> Values for Mapped<'_, V> {
    fn each(&mut self, f: &mut dyn FnMut(f64)) -> Result<(), Error> {
        let map = self.map;
        self.inner.each(&mut |v| f(map(v)))
    }
}

/// The value of rank `k` (0-based, ascending) among `n` values, exactly.
fn kth(src: &mut dyn Values, n: u64, k: u64) -> Result<f64, Error> {
    let (mut prefix, mut bits, mut k, mut count) = (0u64, 0u32, k, n);
    loop {
        let collect = count as usize <= COLLECT;
        let mut hist = if collect {
            Vec::new()
        } else {
            vec![0u64; 1 << 16]
        };
        let mut kept: Vec<f64> = Vec::with_capacity(if collect { count as usize } else { 0 });
        src.each(&mut |v| {
            let kv = key(v);
            if bits > 0 && kv >> (64 - bits) != prefix {
                return;
            }
            if collect {
                kept.push(v);
            } else {
                hist[((kv << bits) >> 48) as usize] += 1;
            }
        })?;
        if collect {
            if (k as usize) >= kept.len() {
                return Err(Error::new(
                    membudget::ErrorKind::Io,
                    "the frame changed while it was read",
                ));
            }
            let (_, v, _) = kept.select_nth_unstable_by(k as usize, f64::total_cmp);
            return Ok(*v);
        }
        let mut below = 0u64;
        let mut bucket = None;
        for (i, &c) in hist.iter().enumerate() {
            if below + c > k {
                bucket = Some((i as u64, c));
                break;
            }
            below += c;
        }
        let Some((b, c)) = bucket else {
            return Err(Error::new(
                membudget::ErrorKind::Io,
                "the frame changed while it was read",
            ));
        };
        prefix = (prefix << 16) | b;
        bits += 16;
        k -= below;
        count = c;
        if bits == 64 {
            // Every value of the bucket has this exact key.
            return Ok(unkey(prefix));
        }
    }
}

/// numpy's median of the values `src` streams (NaN left out); None when there are none.
pub fn median(src: &mut dyn Values) -> Result<Option<(f64, u64)>, Error> {
    let mut n = 0u64;
    src.each(&mut |_| n += 1)?;
    if n == 0 {
        return Ok(None);
    }
    let lo = kth(src, n, (n - 1) / 2)?;
    if n % 2 == 1 {
        return Ok(Some((lo, n)));
    }
    // The upper middle value: lo again if it occurs past rank n/2 - 1, else the least
    // value above it.
    let (mut le, mut above) = (0u64, f64::INFINITY);
    src.each(&mut |v| {
        if v <= lo {
            le += 1;
        } else if v < above {
            above = v;
        }
    })?;
    let hi = if le > n / 2 { lo } else { above };
    Ok(Some((lo + (hi - lo) / 2.0, n)))
}

/// A frame's median and, if `scale`, its MAD (else NaN), exactly.
pub fn frame_stats(src: &mut FrameValues, scale: bool) -> Result<Stats, Error> {
    let m = if exact_f32(src.reader.info()) {
        median_f32(src)?
    } else {
        median(src)?
    };
    let Some((m, n)) = m else {
        return Err(Error::unsupported(
            "the frame holds no value that is not NaN",
        ));
    };
    if !scale {
        return Ok(Stats {
            location: m,
            scale: f64::NAN,
            count: n,
        });
    }
    mad(src, m, n)
}

/// A frame's median and MAD, exactly.
pub fn stats(src: &mut dyn Values) -> Result<Stats, Error> {
    let Some((m, n)) = median(src)? else {
        return Err(Error::unsupported(
            "the frame holds no value that is not NaN",
        ));
    };
    mad(src, m, n)
}

/// The stats of values of median `m` (`n` of them): the MAD added.
fn mad(src: &mut dyn Values, m: f64, n: u64) -> Result<Stats, Error> {
    let dev = move |v: f64| (v - m).abs();
    let mut mapped = Mapped {
        inner: &mut DynValues(src),
        map: &dev,
    };
    let (mad, _) = median(&mut mapped)?.unwrap_or((0.0, 0));
    Ok(Stats {
        location: m,
        scale: mad,
        count: n,
    })
}

struct DynValues<'a>(&'a mut dyn Values);

impl Values for DynValues<'_> {
    fn each(&mut self, f: &mut dyn FnMut(f64)) -> Result<(), Error> {
        self.0.each(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Slice(Vec<f64>);
    impl Values for Slice {
        fn each(&mut self, f: &mut dyn FnMut(f64)) -> Result<(), Error> {
            self.0.iter().copied().filter(|v| !v.is_nan()).for_each(f);
            Ok(())
        }
    }

    fn naive_median(v: &[f64]) -> f64 {
        let mut s: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
        s.sort_by(f64::total_cmp);
        let n = s.len();
        if n % 2 == 1 {
            s[n / 2]
        } else {
            s[n / 2 - 1] + (s[n / 2] - s[n / 2 - 1]) / 2.0
        }
    }

    #[test]
    fn keys_preserve_order() {
        let v = [-1e300, -2.5, -1e-300, -0.0, 0.0, 1e-300, 3.0, 1e300];
        for w in v.windows(2) {
            assert!(key(w[0]) <= key(w[1]), "{w:?}");
        }
        for x in v {
            assert_eq!(unkey(key(x)).to_bits(), x.to_bits());
        }
        let v = [
            f32::NEG_INFINITY,
            -3.5,
            -1e-30,
            -0.0,
            0.0,
            1e-30,
            2.0,
            f32::MAX,
        ];
        for w in v.windows(2) {
            assert!(key32(w[0]) <= key32(w[1]), "{w:?}");
        }
        for x in v {
            assert_eq!(unkey32(key32(x)).to_bits(), x.to_bits());
        }
    }

    #[test]
    fn medians_are_exact_past_the_collection_limit() {
        let mut rng = testkit::Rng::new(7);
        for (n, ints) in [
            (COLLECT * 3 + 1, true),
            (COLLECT * 2 + 2, false),
            (5, false),
            (6, true),
        ] {
            let v: Vec<f64> = (0..n)
                .map(|_| {
                    if ints {
                        (rng.below(4000) as f64) - 300.0
                    } else {
                        rng.f64() * 1e4 - 5e3
                    }
                })
                .collect();
            let want = naive_median(&v);
            let (got, count) = median(&mut Slice(v.clone())).unwrap().unwrap();
            assert_eq!(count, n as u64);
            assert_eq!(got, want, "n={n} ints={ints}");
            let s = stats(&mut Slice(v.clone())).unwrap();
            let dev: Vec<f64> = v.iter().map(|x| (x - want).abs()).collect();
            assert_eq!(s.scale, naive_median(&dev));
        }
    }

    #[test]
    fn coefficients_follow_the_formulas() {
        let s = Stats {
            location: 10.0,
            scale: 2.0,
            count: 1,
        };
        let r = Stats {
            location: 20.0,
            scale: 8.0,
            count: 1,
        };
        let x = 13.0;
        let ap = |(a, b): (f64, f64)| a * x + b;
        assert_eq!(
            ap(coefficients(Method::Additive, s, r).unwrap()),
            x - (10.0 - 20.0)
        );
        assert_eq!(
            ap(coefficients(Method::Multiplicative, s, r).unwrap()),
            x * 20.0 / 10.0
        );
        assert_eq!(
            ap(coefficients(Method::Addscale, s, r).unwrap()),
            4.0 * (x - 10.0) + 20.0
        );
        assert_eq!(
            ap(coefficients(Method::Mulscale, s, r).unwrap()),
            x * 4.0 * 2.0
        );
        let zero = Stats {
            location: 0.0,
            scale: 0.0,
            count: 1,
        };
        assert!(coefficients(Method::Multiplicative, zero, r).is_err());
    }
}
