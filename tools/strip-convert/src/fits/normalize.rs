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
//! [`median_f32`]: histograms of the high then the low 16 bits of each value's 32-bit
//! key, in one pass over the file when the median falls near that of a sample of its
//! rows (in two otherwise). The MAD is computed only when a method needs it
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

/// Buckets (of the high 16 bits of the keys) counted in full in [`median_f32`]'s first
/// pass: the bucket of the sample's median and one each side.
const WINDOW: u32 = 3;

/// Values [`sample_key`] reads at most.
const SAMPLE: usize = 1 << 16;

/// One pass of counts over a frame's 32-bit keys: every value's high 16 bits (four
/// tables, so that runs of values in one bucket, as a sky frame's few dozen hot buckets
/// give, do not wait on each other's increments), and the whole key of the values in a
/// window of [`WINDOW`] buckets.
struct KeyCounts {
    /// `4 << 16` counters: table t counts the values at positions t mod 4.
    high: Vec<u32>,
    /// The high counts flushed before a table could overflow.
    flushed: Vec<u64>,
    /// Values counted into `high` since the last flush.
    pending: u64,
    /// The window's first key, and its keys' counts (`fine[k - first]`), then 256
    /// counters the values outside it go to (spread by their low bits, for the same
    /// reason as the four tables), so the loop has no branch.
    first: u32,
    span: u32,
    fine: Vec<u32>,
}

impl KeyCounts {
    /// Counts with the window around the key `guess` (none: no window).
    fn new(guess: Option<u32>) -> KeyCounts {
        let span = if guess.is_some() { WINDOW << 16 } else { 0 };
        let first = guess.map_or(0, |g| {
            ((g >> 16).saturating_sub(WINDOW / 2).min((1 << 16) - WINDOW)) << 16
        });
        KeyCounts {
            high: vec![0; 4 << 16],
            flushed: vec![0; 1 << 16],
            pending: 0,
            first,
            span,
            fine: vec![0; if span > 0 { span as usize + 256 } else { 0 }],
        }
    }

    fn flush(&mut self) {
        for h in self.high.chunks_exact_mut(1 << 16) {
            for (f, c) in self.flushed.iter_mut().zip(h.iter_mut()) {
                *f += u64::from(*c);
                *c = 0;
            }
        }
        self.pending = 0;
    }

    /// Count the non-NaN values of `b`. The window's counters are `u32`: a window is
    /// only set for frames of fewer than 2^32 values.
    fn add(&mut self, b: &[f32]) {
        if self.pending + b.len() as u64 > u64::from(u32::MAX) {
            self.flush();
        }
        self.pending += b.len() as u64;
        let (first, span) = (self.first, self.span);
        let windowed = span > 0;
        let (h0, rest) = self.high.split_at_mut(1 << 16);
        let (h1, rest) = rest.split_at_mut(1 << 16);
        let (h2, h3) = rest.split_at_mut(1 << 16);
        let fine = &mut self.fine[..];
        let mut count = |h: &mut [u32], v: f32| {
            if v.is_nan() {
                return;
            }
            let k = key32(v);
            h[(k >> 16) as usize] += 1;
            if windowed {
                let d = k.wrapping_sub(first);
                let i = if d < span { d } else { span + (k & 255) };
                fine[i as usize] += 1;
            }
        };
        let mut quads = b.chunks_exact(4);
        for q in &mut quads {
            count(h0, q[0]);
            count(h1, q[1]);
            count(h2, q[2]);
            count(h3, q[3]);
        }
        for &v in quads.remainder() {
            count(h0, v);
        }
    }

    /// The counts of the high 16 bits.
    fn high(&mut self) -> Vec<u64> {
        self.flush();
        self.flushed.clone()
    }

    /// The counts of the low 16 bits of bucket `b`'s values, if the window holds it.
    fn bucket(&self, b: u32) -> Option<&[u32]> {
        let first = (self.first >> 16) as usize;
        let b = b as usize;
        (self.span > 0 && b >= first && b < first + WINDOW as usize)
            .then(|| &self.fine[(b - first) << 16..(b - first + 1) << 16])
    }
}

/// The key of the median of about [`SAMPLE`] values of the frame, taken from 32 rows
/// spread over its height (none if they are all NaN): where [`median_f32`] looks closely.
fn sample_key(src: &mut FrameValues) -> Result<Option<u32>, Error> {
    let (w, h) = (src.reader.info().width, src.reader.info().height);
    let rows = h.clamp(1, 32);
    let step = (rows as usize * w as usize).div_ceil(SAMPLE).max(1);
    let mut row = vec![0f32; w as usize];
    let mut keys = Vec::with_capacity(SAMPLE);
    for k in 0..rows {
        let y = (u64::from(k) * u64::from(h) / u64::from(rows)) as u32;
        src.reader.read_rows_f32(y, 1, &mut row)?;
        keys.extend(
            row.iter()
                .step_by(step)
                .filter(|v| !v.is_nan())
                .map(|&v| key32(v)),
        );
    }
    if keys.is_empty() {
        return Ok(None);
    }
    let mid = keys.len() / 2;
    Ok(Some(*keys.select_nth_unstable(mid).1))
}

/// numpy's median of an [`exact_f32`] frame (NaN left out), exactly, from counts of the
/// order-preserving 32-bit keys of its values: a histogram of their high 16 bits finds the
/// buckets of the two middle ranks, the counts of the low 16 bits of those buckets' values
/// the values. Those are counted in the same pass for a window of buckets around the
/// median of a sample of the frame's rows (`sample_key`); a middle rank outside the
/// window (the sample was far off) costs a second pass over the frame. None when every
/// value is NaN.
pub fn median_f32(src: &mut FrameValues) -> Result<Option<(f64, u64)>, Error> {
    let info = src.reader.info();
    let values = u64::from(info.width) * u64::from(info.height);
    let guess = if values < u64::from(u32::MAX) {
        sample_key(src)?
    } else {
        None
    };
    let mut counts = KeyCounts::new(guess);
    src.blocks_f32(&mut |b| counts.add(b))?;
    let high = counts.high();
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
    let (b1k, b2k) = (b1 as u32, b2 as u32);
    let value = |hist: &[u64], b: u32, k: u64| -> Result<f64, Error> {
        let (l, _) = bucket_of(hist, k).ok_or_else(changed)?;
        Ok(f64::from(unkey32((b << 16) | l as u32)))
    };
    let widen = |c: &[u32]| c.iter().map(|&c| u64::from(c)).collect::<Vec<u64>>();
    let (low1, low2) = match (counts.bucket(b1k), counts.bucket(b2k)) {
        (Some(l1), Some(l2)) => (widen(l1), if b2 != b1 { widen(l2) } else { Vec::new() }),
        _ => {
            // The sample missed: count the two buckets' low bits in a second pass.
            let (mut low1, mut low2) = (
                vec![0u64; 1 << 16],
                vec![0u64; if b2 != b1 { 1 << 16 } else { 0 }],
            );
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
            (low1, low2)
        }
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

    /// A frame written to FITS and read back through [`median_f32`], against a sort.
    fn f32_median_of(rows: &[Vec<f32>]) -> (Option<(f64, u64)>, bool) {
        let dir = testkit::tempdir();
        let path = dir.path().join("f.fits");
        let (w, h) = (rows[0].len() as u32, rows.len() as u32);
        let mut wr = raster::fits::FitsWriter::create(&path, w, h, 1, -32, None).unwrap();
        for (y, r) in rows.iter().enumerate() {
            wr.write_rows_f32(0, y as u32, r).unwrap();
        }
        wr.finish().unwrap();
        let mut reader = FitsReader::open(&path, &Default::default()).unwrap();
        let mut src = FrameValues {
            reader: &mut reader,
            rows: 3,
        };
        // Whether the first pass's window held the middle values (no second pass).
        let guess = sample_key(&mut src).unwrap();
        let all: Vec<f64> = rows.iter().flatten().map(|&v| f64::from(v)).collect();
        let finite: Vec<f64> = all.iter().copied().filter(|v| !v.is_nan()).collect();
        let in_window = !finite.is_empty() && {
            let counts = KeyCounts::new(guess);
            let mut s = finite.clone();
            s.sort_by(f64::total_cmp);
            let mid = [s[(s.len() - 1) / 2], s[s.len() / 2]];
            mid.iter()
                .all(|&v| counts.bucket(key32(v as f32) >> 16).is_some())
        };
        let got = median_f32(&mut src).unwrap();
        if finite.is_empty() {
            assert_eq!(got, None);
        } else {
            let (m, n) = got.unwrap();
            assert_eq!(n, finite.len() as u64);
            assert_eq!(m.to_bits(), naive_median(&finite).to_bits(), "{rows:?}");
        }
        (got, in_window)
    }

    #[test]
    fn f32_medians_are_exact_in_one_pass_or_two() {
        let mut rng = testkit::Rng::new(11);
        // A sky: the sample of rows finds the median's bucket, one pass.
        let sky: Vec<Vec<f32>> = (0..70)
            .map(|y| {
                (0..33)
                    .map(|x| 0.0165 + 1e-5 * (x + y) as f32 + 5e-4 * (rng.f64() as f32 - 0.5))
                    .collect()
            })
            .collect();
        assert!(
            f32_median_of(&sky).1,
            "the sample should find a sky's median"
        );
        // The sampled rows (y = 2k of 64) are far below the others and the middle values
        // are the greatest of them and the least of the rest: a second pass.
        let split: Vec<Vec<f32>> = (0..64)
            .map(|y| {
                (0..20)
                    .map(|_| {
                        let v = rng.f64() as f32 * 1000.0;
                        if y % 2 == 0 {
                            v
                        } else {
                            1e6 + v
                        }
                    })
                    .collect()
            })
            .collect();
        assert!(!f32_median_of(&split).1, "this frame's sample should miss");
        // NaNs left out; an odd count; every value NaN.
        let mut nans = sky.clone();
        nans[3][4] = f32::NAN;
        nans[0][0] = f32::NAN;
        nans[69][32] = f32::NAN;
        f32_median_of(&nans);
        f32_median_of(&[vec![f32::NAN; 5], vec![f32::NAN; 5]]);
        f32_median_of(&[vec![-2.0, 7.5, 1e30], vec![-0.0, 3.0, f32::INFINITY]]);
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
