//! The chain of steps, in the order given, and how it runs: consecutive point steps are
//! one lookup table per component; a step that needs whole-image statistics
//! (`--contrast`, `--autocontrast`) gets them from a streaming pass over the chain up to
//! it, and the point steps after it take theirs from the same pass where histograms
//! allow (the default chain: one statistics pass, then the pass that writes).

use crate::filters::{Gauss, Median, Unsharp};
use crate::point::{self, Lut, Stats};
use crate::resize::Resize;
use crate::stage::{LutStage, Neigh};
use membudget::Error;
use raster::{Edge, Geometry, RowSource};
use serde_json::{json, Value};

/// How `--resize` gives the size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Size {
    /// A box `W x H`: fit inside (or, with `--fill`, cover and crop to it).
    Box(u32, u32),
    /// A percentage of each side.
    Percent(f64),
}

/// One step as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// The comic-reader S-curve.
    Curve,
    /// Gamma.
    Gamma(f64),
    /// Brightness factor.
    Brightness(f64),
    /// Contrast factor around the greyscale mean.
    Contrast(f64),
    /// Autocontrast with this cutoff (percent per side).
    AutoContrast(f64),
    /// Levels: black, white, gamma.
    Levels(f64, f64, f64),
    /// Gaussian blur sigma.
    Blur(f64),
    /// Unsharp mask: sigma, amount, threshold.
    Unsharp(f64, f64, f64),
    /// Median radius.
    Median(u32),
    /// Lanczos3 resize.
    Resize(Size, bool),
    /// Shrink to at most this many pixels.
    MaxPixels(u64),
}

impl Step {
    /// The default chain: curve, gamma 0.9, brightness 1.03, contrast 1.05, autocontrast 1%.
    pub fn default_chain() -> Vec<Step> {
        vec![
            Step::Curve,
            Step::Gamma(0.9),
            Step::Brightness(1.03),
            Step::Contrast(1.05),
            Step::AutoContrast(1.0),
        ]
    }

    /// As the record names it.
    pub fn describe(&self) -> String {
        match self {
            Step::Curve => "curve".into(),
            Step::Gamma(g) => format!("gamma {g}"),
            Step::Brightness(f) => format!("brightness {f}"),
            Step::Contrast(f) => format!("contrast {f}"),
            Step::AutoContrast(c) => format!("autocontrast {c}"),
            Step::Levels(b, w, g) => format!("levels {b},{w},{g}"),
            Step::Blur(s) => format!("blur {s}"),
            Step::Unsharp(s, a, t) => format!("unsharp {s},{a},{t}"),
            Step::Median(r) => format!("median {r}"),
            Step::Resize(Size::Box(w, h), fill) => {
                format!("resize {w}x{h}{}", if *fill { " fill" } else { "" })
            }
            Step::Resize(Size::Percent(p), _) => format!("resize {p}%"),
            Step::MaxPixels(n) => format!("max-pixels {n}"),
        }
    }

    fn is_point(&self) -> bool {
        matches!(
            self,
            Step::Curve
                | Step::Gamma(_)
                | Step::Brightness(_)
                | Step::Contrast(_)
                | Step::AutoContrast(_)
                | Step::Levels(..)
        )
    }

    fn needs_stats(&self) -> bool {
        matches!(self, Step::Contrast(_) | Step::AutoContrast(_))
    }
}

/// A step ready to run.
#[derive(Debug, Clone)]
enum Ready {
    /// Tables per component (alpha: `None`).
    Lut(Vec<Option<Lut>>),
    Gauss(Gauss),
    Unsharp(Unsharp),
    Median(Median),
    Resize(Resize),
    /// Nothing to do (a resize to the same size).
    Nothing,
}

/// What the image looks like where a step runs.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    /// Geometry.
    pub g: Geometry,
    /// Colour components (the others are alpha, left alone by value operations).
    pub colour: usize,
}

impl Shape {
    fn max(&self) -> u32 {
        if self.g.sample_bytes == 2 {
            65535
        } else {
            255
        }
    }
}

/// (resampled size, crop offset, output size).
type Target = ((u32, u32), (u32, u32), (u32, u32));

/// The size `--resize` or `--max-pixels` asks of a `w` x `h` image.
fn target(step: &Step, w: u32, h: u32) -> Option<Target> {
    let fit = |s: f64| {
        let nw = ((f64::from(w) * s).round() as u32).max(1);
        let nh = ((f64::from(h) * s).round() as u32).max(1);
        ((nw, nh), (0, 0), (nw, nh))
    };
    match *step {
        Step::Resize(Size::Percent(p), _) => Some(fit(p / 100.0)),
        Step::Resize(Size::Box(bw, bh), false) => Some(fit(
            (f64::from(bw) / f64::from(w)).min(f64::from(bh) / f64::from(h))
        )),
        Step::Resize(Size::Box(bw, bh), true) => {
            let s = (f64::from(bw) / f64::from(w)).max(f64::from(bh) / f64::from(h));
            let fw = ((f64::from(w) * s).round() as u32).max(bw);
            let fh = ((f64::from(h) * s).round() as u32).max(bh);
            Some(((fw, fh), ((fw - bw) / 2, (fh - bh) / 2), (bw, bh)))
        }
        Step::MaxPixels(n) => {
            let px = u64::from(w) * u64::from(h);
            if px <= n {
                return None;
            }
            let mut s = (n as f64 / px as f64).sqrt();
            loop {
                let t = fit(s);
                if u64::from(t.2 .0) * u64::from(t.2 .1) <= n.max(1) || s < 1e-9 {
                    return Some(t);
                }
                s *= 0.9999;
            }
        }
        _ => None,
    }
}

/// The chain ready to run on one image, and what it learnt on the way.
#[derive(Debug)]
pub struct Plan {
    ready: Vec<Ready>,
    /// Statistics the steps used, for the record.
    pub stats: Vec<Value>,
    /// Streaming passes over the input (statistics passes plus the one that writes).
    pub passes: u32,
    /// The widest halo of a neighbourhood step, and their sum.
    pub halos: (u32, u32),
    /// Neighbourhood stages.
    pub stages: u32,
    /// The output's geometry.
    pub out: Geometry,
}

/// Halos and stage count of `steps` on an image of shape `s` (before statistics: for
/// planning memory).
pub fn neighbourhood(steps: &[Step], s: Shape, edge: Edge) -> (u32, u32, u32) {
    let mut g = s.g;
    let (mut widest, mut sum, mut n) = (0, 0, 0);
    for st in steps {
        if let Some(r) = ready_neigh(
            st,
            Shape {
                g,
                colour: s.colour,
            },
            edge,
        ) {
            if let Some((h, g2)) = halo_of(&r, g) {
                widest = widest.max(h);
                sum += h;
                n += 1;
                g = g2;
            }
        }
    }
    (widest, sum, n)
}

fn halo_of(r: &Ready, g: Geometry) -> Option<(u32, Geometry)> {
    use crate::stage::Kernel;
    match r {
        Ready::Gauss(k) => Some((k.halo(), k.out_geometry(g))),
        Ready::Unsharp(k) => Some((k.halo(), k.out_geometry(g))),
        Ready::Median(k) => Some((k.halo(), k.out_geometry(g))),
        Ready::Resize(k) => Some((k.halo(), k.out_geometry(g))),
        Ready::Lut(_) | Ready::Nothing => None,
    }
}

fn ready_neigh(step: &Step, s: Shape, edge: Edge) -> Option<Ready> {
    let w = s.g.width;
    Some(match *step {
        Step::Blur(sigma) => Ready::Gauss(Gauss::new(sigma, w, s.colour, edge)),
        Step::Unsharp(sigma, a, t) => Ready::Unsharp(Unsharp::new(sigma, a, t, w, s.colour, edge)),
        Step::Median(r) => Ready::Median(Median::new(r, w, s.colour, edge)),
        Step::Resize(..) | Step::MaxPixels(_) => match target(step, w, s.g.height) {
            Some((full, off, out)) if out != (w, s.g.height) || full != out => {
                Ready::Resize(Resize::new((w, s.g.height), full, off, out))
            }
            _ => Ready::Nothing,
        },
        _ => return None,
    })
}

/// A chain stacked over one pass's source.
pub type Chain<'s> = Box<dyn RowSource + Send + 's>;

/// One pass over the input: `open(f)` opens the input afresh and runs `f` over it (the
/// caller reads it ahead on another thread).
pub type Open<'a> = dyn Fn(&mut dyn FnMut(&mut (dyn RowSource + Send)) -> Result<(), Error>) -> Result<(), Error>
    + Sync
    + 'a;

/// Stack `ready` over `src`.
fn build<'s>(
    ready: &[Ready],
    src: &'s mut (dyn RowSource + Send),
    band_rows: u32,
    edge: Edge,
) -> Chain<'s> {
    let mut src: Chain<'s> = Box::new(src);
    for r in ready {
        src = match r {
            Ready::Lut(l) => Box::new(LutStage::new(src, l.clone())),
            Ready::Gauss(k) => Box::new(Neigh::new(src, k.clone(), band_rows, edge)),
            Ready::Unsharp(k) => Box::new(Neigh::new(src, k.clone(), band_rows, edge)),
            Ready::Median(k) => Box::new(Neigh::new(src, k.clone(), band_rows, edge)),
            Ready::Resize(k) => Box::new(Neigh::new(src, k.clone(), band_rows, edge)),
            Ready::Nothing => src,
        };
    }
    src
}

/// Resolve `steps` on the image `open` gives (shape `s`), running the statistics passes
/// they need.
pub fn plan(
    steps: &[Step],
    s: Shape,
    open: &Open<'_>,
    band_rows: u32,
    edge: Edge,
) -> Result<Plan, Error> {
    let mut ready: Vec<Ready> = Vec::new();
    let mut stats_out = Vec::new();
    let mut passes = 1;
    let mut shape = s;
    let mut i = 0;
    let ident = |sh: &Shape| -> Lut { (0..=sh.max()).map(|v| v as u16).collect() };
    while i < steps.len() {
        let step = &steps[i];
        if !step.is_point() {
            if let Some(r) = ready_neigh(step, shape, edge) {
                if let Some((_, g2)) = halo_of(&r, shape.g) {
                    shape.g = g2;
                }
                ready.push(r);
            }
            i += 1;
            continue;
        }
        // A run of point steps: per-component tables, composed.
        let comps = shape.colour;
        let mut luts: Vec<Lut> = vec![ident(&shape); comps];
        // Histograms (per component) and greyscale histogram of the image at the current
        // point of the run, when known.
        let mut hist: Option<Vec<Vec<u64>>> = None;
        let mut gray: Option<Vec<u64>> = None;
        while i < steps.len() && steps[i].is_point() {
            let step = &steps[i];
            let max = shape.max();
            if step.needs_stats() {
                let usable = match step {
                    Step::Contrast(_) => gray.is_some(),
                    _ => hist.is_some(),
                };
                if !usable {
                    // A pass over the chain so far; these tables are applied by the
                    // statistics themselves (no stage writing every sample).
                    let mut st = Stats::default();
                    open(&mut |src| {
                        let mut chain = build(&ready, src, band_rows, edge);
                        st = point::gather(chain.as_mut(), &luts, band_rows)?;
                        Ok(())
                    })?;
                    passes += 1;
                    hist = Some(st.hist.clone());
                    gray = Some(st.gray.clone());
                }
            }
            let new: Vec<Lut> = match *step {
                Step::Curve => vec![point::curve(max); comps],
                Step::Gamma(g) => vec![point::gamma(g, max); comps],
                Step::Brightness(f) => vec![point::brightness(f, max); comps],
                Step::Levels(b, w, g) => vec![point::levels(b, w, g, max); comps],
                Step::Contrast(f) => {
                    let st = Stats {
                        hist: Vec::new(),
                        gray: gray.clone().unwrap_or_default(),
                    };
                    let mean = st.gray_mean();
                    stats_out.push(json!({"step": step.describe(), "gray_mean": mean}));
                    vec![point::contrast(f, mean, max); comps]
                }
                Step::AutoContrast(cut) => {
                    let h = hist.as_ref().expect("gathered above");
                    let mut ranges = Vec::new();
                    let luts: Vec<Lut> = h
                        .iter()
                        .map(|hc| {
                            let (l, r) = point::autocontrast(hc, cut);
                            ranges.push(r.map_or(Value::Null, |(a, b)| json!([a, b])));
                            l
                        })
                        .collect();
                    stats_out.push(json!({"step": step.describe(), "ranges": ranges}));
                    luts
                }
                _ => unreachable!("point steps only"),
            };
            // Histograms follow the tables; the greyscale one cannot (it mixes
            // components), so a later contrast needs a pass of its own.
            if let Some(h) = &mut hist {
                for (hc, l) in h.iter_mut().zip(&new) {
                    *hc = point::map_hist(hc, l);
                }
            }
            gray = None;
            for (l, n) in luts.iter_mut().zip(&new) {
                *l = point::compose(l, n);
            }
            i += 1;
        }
        ready.push(lut_stage(&luts, s_comps(&shape)));
    }
    let (widest, sum, stages) = neighbourhood(steps, s, edge);
    Ok(Plan {
        ready,
        stats: stats_out,
        passes,
        halos: (widest, sum),
        stages,
        out: shape.g,
    })
}

fn s_comps(s: &Shape) -> usize {
    s.g.comps
}

fn lut_stage(luts: &[Lut], comps: usize) -> Ready {
    Ready::Lut((0..comps).map(|c| luts.get(c).cloned()).collect())
}

impl Plan {
    /// The chain over `src`: the final pass's source.
    pub fn source<'s>(
        &self,
        src: &'s mut (dyn RowSource + Send),
        band_rows: u32,
        edge: Edge,
    ) -> Chain<'s> {
        build(&self.ready, src, band_rows, edge)
    }
}
