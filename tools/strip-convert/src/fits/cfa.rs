//! CFA (Bayer) split: four half-size frames, streamed by row pairs.
//!
//! Planes are numbered and named as Siril's `split_cfa` numbers them (checked against
//! siril-cli 1.0.6 and Siril's source, whose loop reads "not c0, c1, c2 and c3 because of
//! the read orientation"): Siril counts rows top-down on screen, where a FITS image's
//! first stored row is at the bottom, so in each pair of stored rows the second is its
//! "even" one. In numpy's (stored) indexing of the data:
//!
//! | file | Siril's (row, column) | numpy |
//! |---|---|---|
//! | `CFA0_<name>.fits` | (even, even) | `data[1::2, 0::2]` |
//! | `CFA1_<name>.fits` | (odd, even) | `data[0::2, 0::2]` |
//! | `CFA2_<name>.fits` | (even, odd) | `data[1::2, 1::2]` |
//! | `CFA3_<name>.fits` | (odd, odd) | `data[0::2, 1::2]` |
//!
//! each cut to `H // 2` rows and `W // 2` columns: an odd last stored row or column is
//! dropped, as Siril drops it. The stored values are copied bit for bit (same BITPIX,
//! BZERO, BSCALE). `--cfa-rgb` writes `RGB_<name>.fits` instead: a float32 cube of three
//! planes R, G = (G1 + G2) / 2, B (physical values).
//!
//! The pattern (`--split-cfa RGGB|BGGR|GRBG|GBRG`, or `auto` from the header) only names
//! the planes' colours (FILTER) and drives `--cfa-rgb`; a given pattern is the colours of
//! the stored data's first two rows, as numpy shows them (`data[0:2, 0:2]`). With `auto`,
//! BAYERPAT gives those colours when ROWORDER is `TOP-DOWN` or absent; with
//! `ROWORDER = 'BOTTOM-UP'` it describes the image shown top-down, whose first row is the
//! last stored one, so for an even height its two rows swap. XBAYROFF/YBAYROFF (MaxIm DL)
//! shift the pattern by a column/row when odd.

/// A Bayer pattern: the colours at (0,0), (0,1), (1,0), (1,1) of the stored data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pattern(pub [u8; 4]);

/// `--split-cfa`: a pattern or `auto`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfaSel {
    /// The given pattern.
    Fixed(Pattern),
    /// From BAYERPAT and ROWORDER.
    Auto,
}

impl Pattern {
    /// RGGB, BGGR, GRBG or GBRG (case-insensitive).
    pub fn parse(s: &str) -> Option<Pattern> {
        let u = s.trim().to_ascii_uppercase();
        matches!(u.as_str(), "RGGB" | "BGGR" | "GRBG" | "GBRG")
            .then(|| Pattern(u.as_bytes().try_into().expect("4 bytes")))
    }

    /// The pattern with its two rows swapped.
    pub fn flip_rows(self) -> Pattern {
        let p = self.0;
        Pattern([p[2], p[3], p[0], p[1]])
    }

    /// The pattern with its two columns swapped.
    pub fn flip_cols(self) -> Pattern {
        let p = self.0;
        Pattern([p[1], p[0], p[3], p[2]])
    }

    /// As text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or("????")
    }

    /// Index of the plane of colour `c` (the first one for G).
    pub fn index(&self, c: u8) -> usize {
        self.0.iter().position(|&x| x == c).unwrap_or(0)
    }
}

/// Parse `--split-cfa`.
pub fn parse_sel(s: &str) -> Result<CfaSel, String> {
    if s.eq_ignore_ascii_case("auto") {
        return Ok(CfaSel::Auto);
    }
    Pattern::parse(s)
        .map(CfaSel::Fixed)
        .ok_or_else(|| format!("{s:?} is not RGGB, BGGR, GRBG, GBRG or auto"))
}

/// The pattern of the stored data from the header keywords (see the module doc).
pub fn from_header(
    bayerpat: Option<&str>,
    roworder: Option<&str>,
    xoff: Option<f64>,
    yoff: Option<f64>,
    height: u32,
) -> Result<Pattern, String> {
    let Some(b) = bayerpat else {
        return Err("--split-cfa auto: the header has no BAYERPAT; give the pattern".into());
    };
    let mut p = Pattern::parse(b)
        .ok_or_else(|| format!("BAYERPAT = {b:?}: not RGGB, BGGR, GRBG or GBRG"))?;
    if roworder.is_some_and(|r| r.trim().eq_ignore_ascii_case("BOTTOM-UP"))
        && height.is_multiple_of(2)
    {
        p = p.flip_rows();
    }
    if xoff.is_some_and(|x| (x as i64) % 2 != 0) {
        p = p.flip_cols();
    }
    if yoff.is_some_and(|y| (y as i64) % 2 != 0) {
        p = p.flip_rows();
    }
    Ok(p)
}

/// The stored (row, column) parity of plane `k` (see the module doc).
pub fn plane_offset(k: usize) -> (usize, usize) {
    (1 - k % 2, k / 2)
}

/// Plane `k`'s colour in `p` (a pattern of the stored data).
pub fn plane_colour(p: Pattern, k: usize) -> u8 {
    let (dy, dx) = plane_offset(k);
    p.0[dy * 2 + dx]
}

/// Split one block of raw rows (`rows` rows, even, of `width` samples of `sb` bytes)
/// into the four planes' rows (`out[k]` is plane k's, replaced).
pub fn split_raw(block: &[u8], width: usize, rows: usize, sb: usize, out: &mut [Vec<u8>; 4]) {
    let half = width / 2;
    for o in out.iter_mut() {
        o.clear();
    }
    for r in (0..rows - rows % 2).step_by(2) {
        for (k, o) in out.iter_mut().enumerate() {
            let (dy, dx) = plane_offset(k);
            let row = &block[(r + dy) * width * sb..(r + dy + 1) * width * sb];
            for x in 0..half {
                let a = (2 * x + dx) * sb;
                o.extend_from_slice(&row[a..a + sb]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_flip() {
        assert_eq!(parse_sel("rggb"), Ok(CfaSel::Fixed(Pattern(*b"RGGB"))));
        assert_eq!(parse_sel("auto"), Ok(CfaSel::Auto));
        assert!(parse_sel("RGBG").is_err());
        let p = Pattern(*b"RGGB");
        assert_eq!(p.flip_rows(), Pattern(*b"GBRG"));
        assert_eq!(p.flip_cols(), Pattern(*b"GRBG"));
        assert_eq!(
            from_header(Some("RGGB"), Some("BOTTOM-UP"), None, None, 4).unwrap(),
            Pattern(*b"GBRG")
        );
        assert_eq!(
            from_header(Some("RGGB"), Some("BOTTOM-UP"), None, None, 5).unwrap(),
            p
        );
        assert_eq!(
            from_header(Some("RGGB"), Some("TOP-DOWN"), Some(1.0), None, 4).unwrap(),
            Pattern(*b"GRBG")
        );
        assert!(from_header(None, None, None, None, 4).is_err());
    }

    #[test]
    fn split_takes_every_other_sample() {
        // 5x3 of u8: the last column and row are dropped.
        let b: Vec<u8> = (0..15).collect();
        let mut out: [Vec<u8>; 4] = Default::default();
        split_raw(&b, 5, 3, 1, &mut out);
        // Siril's numbering: CFA0 = the second stored row's even columns.
        assert_eq!(out, [vec![5, 7], vec![0, 2], vec![6, 8], vec![1, 3]]);
        let p = Pattern(*b"RGGB");
        let colours: Vec<char> = (0..4).map(|k| plane_colour(p, k) as char).collect();
        assert_eq!(colours, ['G', 'R', 'B', 'G']);
    }
}
