//! Natural order of page names (`Page 2` before `Page 10`, case-insensitive), and the
//! zero-padded names that make plain byte order equal it: readers (Komga, Kavita,
//! ComicRack) sort entries by name, most of them byte-wise.

use std::cmp::Ordering;

/// One run of a name: digits (compared by value) or anything else (compared
/// case-insensitively).
#[derive(Debug, PartialEq, Eq)]
enum Run<'a> {
    Digits(&'a str),
    Text(&'a str),
}

fn runs(s: &str) -> impl Iterator<Item = Run<'_>> {
    let mut rest = s;
    std::iter::from_fn(move || {
        let first = rest.chars().next()?;
        let digit = first.is_ascii_digit();
        let end = rest
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() != digit)
            .map_or(rest.len(), |(i, _)| i);
        let (run, tail) = rest.split_at(end);
        rest = tail;
        Some(if digit {
            Run::Digits(run)
        } else {
            Run::Text(run)
        })
    })
}

fn cmp_digits(a: &str, b: &str) -> Ordering {
    let (ta, tb) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
    // Same value: compare by length of the digits (no overflow for any length).
    ta.len().cmp(&tb.len()).then_with(|| ta.cmp(tb))
}

fn cmp_text(a: &str, b: &str) -> Ordering {
    let la = a.chars().flat_map(char::to_lowercase);
    let lb = b.chars().flat_map(char::to_lowercase);
    la.cmp(lb)
}

/// Natural order of one path component.
fn cmp_component(a: &str, b: &str) -> Ordering {
    let (mut ra, mut rb) = (runs(a), runs(b));
    loop {
        match (ra.next(), rb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (&x, &y) {
                    (Run::Digits(p), Run::Digits(q)) => cmp_digits(p, q),
                    (Run::Text(p), Run::Text(q)) => cmp_text(p, q),
                    (Run::Digits(_), Run::Text(_)) => Ordering::Less,
                    (Run::Text(_), Run::Digits(_)) => Ordering::Greater,
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Natural order of two names or `/`-separated paths, directory by directory; names
/// equal under it (`a1` and `A01`) fall back to byte order so the order is total.
pub fn cmp(a: &str, b: &str) -> Ordering {
    let mut ca = a.split('/');
    let mut cb = b.split('/');
    loop {
        match (ca.next(), cb.next()) {
            (None, None) => return a.cmp(b),
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = cmp_component(x, y);
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// Digits of the zero-padded page names for `pages` pages: at least 3 (`001.jpg`), as
/// scanners and most tools name them.
pub fn pad_width(pages: usize) -> usize {
    pages.max(1).to_string().len().max(3)
}

/// The zero-padded name of page `index` (0-based) with extension `ext` (lowercased;
/// `jpeg` stays `jpeg`, the bytes are unchanged so the name keeps saying what they are).
pub fn padded_name(index: usize, width: usize, ext: &str) -> String {
    if ext.is_empty() {
        format!("{:0width$}", index + 1)
    } else {
        format!("{:0width$}.{}", index + 1, ext.to_ascii_lowercase())
    }
}

/// The extension of a name (after the last `.` of its last component), if any.
pub fn extension(name: &str) -> &str {
    let base = name.rsplit('/').next().unwrap_or(name);
    match base.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => ext,
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(names: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        v.sort_by(|a, b| cmp(a, b));
        v
    }

    #[test]
    fn numbers_by_value_case_insensitive() {
        assert_eq!(
            sorted(&["Page 10.jpg", "page 2.jpg", "Page 1.jpg", "PAGE 100.jpg"]),
            ["Page 1.jpg", "page 2.jpg", "Page 10.jpg", "PAGE 100.jpg"]
        );
        assert_eq!(
            sorted(&["002.jpg", "001a.jpg", "001.jpg", "1b.jpg"]),
            ["001.jpg", "001a.jpg", "1b.jpg", "002.jpg"]
        );
        assert_eq!(
            sorted(&["Ch 10/1.jpg", "Ch 2/10.jpg", "Ch 2/9.jpg"]),
            ["Ch 2/9.jpg", "Ch 2/10.jpg", "Ch 10/1.jpg"]
        );
        // Digit runs far beyond u64 do not overflow.
        assert_eq!(
            cmp("99999999999999999999999", "100000000000000000000000"),
            Ordering::Less
        );
        assert_eq!(cmp("b", "B"), "b".cmp("B"));
    }

    #[test]
    fn padded_names_sort_like_natural_order() {
        let w = pad_width(1200);
        assert_eq!(w, 4);
        let names: Vec<String> = (0..1200).map(|i| padded_name(i, w, "JPG")).collect();
        let mut bytes = names.clone();
        bytes.sort();
        assert_eq!(bytes, names);
        assert_eq!(names[0], "0001.jpg");
        assert_eq!(extension("a/b.c/d"), "");
        assert_eq!(extension(".hidden"), "");
        assert_eq!(extension("x/p.Jpeg"), "Jpeg");
    }
}
