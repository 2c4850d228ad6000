//! `ComicInfo.xml` (the ComicRack schema readers such as Komga and Kavita read): generated
//! with `PageCount` and one `<Page>` per image with its dimensions read from headers, or,
//! for an archive that has one, brought up to date after pages were removed, moved or
//! inserted, keeping everything else in it byte for byte.

use std::fmt::Write as _;

/// One page as ComicInfo describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageInfo {
    /// Width in pixels, when the header could be read.
    pub width: Option<u64>,
    /// Height in pixels.
    pub height: Option<u64>,
    /// Size of the image file in bytes.
    pub bytes: u64,
}

/// The `<Pages>` element for `pages`, indented by two spaces.
fn pages_element(pages: &[PageInfo]) -> String {
    let mut s = String::from("<Pages>\n");
    for (i, p) in pages.iter().enumerate() {
        let _ = write!(s, "    <Page Image=\"{i}\"");
        if i == 0 {
            s.push_str(" Type=\"FrontCover\"");
        }
        let _ = write!(s, " ImageSize=\"{}\"", p.bytes);
        if let (Some(w), Some(h)) = (p.width, p.height) {
            let _ = write!(s, " ImageWidth=\"{w}\" ImageHeight=\"{h}\"");
        }
        s.push_str(" />\n");
    }
    s.push_str("  </Pages>");
    s
}

/// A new ComicInfo.xml for `pages`.
pub fn generate(pages: &[PageInfo]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <ComicInfo xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" \
         xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n  \
         <PageCount>{}</PageCount>\n  {}\n</ComicInfo>\n",
        pages.len(),
        pages_element(pages)
    )
}

/// Byte range of the first element `<tag ...>...</tag>` or `<tag ... />` in `xml`.
fn element(xml: &str, tag: &str) -> Option<(usize, usize)> {
    let open = format!("<{tag}");
    let mut from = 0;
    while let Some(i) = xml[from..].find(&open).map(|i| i + from) {
        let after = xml[i + open.len()..].chars().next()?;
        if !(after == '>' || after == '/' || after.is_whitespace()) {
            from = i + open.len();
            continue;
        }
        let gt = xml[i..].find('>')? + i;
        if xml[..gt].ends_with('/') {
            return Some((i, gt + 1));
        }
        let close = format!("</{tag}>");
        let end = xml[gt..].find(&close)? + gt + close.len();
        return Some((i, end));
    }
    None
}

/// `xml` with `PageCount` and `Pages` describing `pages`; every other byte kept. `None`
/// when it has no `<ComicInfo>` root to put them in.
pub fn update(xml: &str, pages: &[PageInfo]) -> Option<String> {
    let mut out = xml.to_string();
    let count = format!("<PageCount>{}</PageCount>", pages.len());
    let pages_el = pages_element(pages);
    let root_close = out.rfind("</ComicInfo>")?;
    match element(&out, "Pages") {
        Some((a, b)) => out.replace_range(a..b, &pages_el),
        None => out.insert_str(root_close, &format!("  {pages_el}\n")),
    }
    match element(&out, "PageCount") {
        Some((a, b)) => out.replace_range(a..b, &count),
        None => {
            let at = out.rfind("</ComicInfo>")?;
            out.insert_str(at, &format!("  {count}\n"));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(w: u64, h: u64) -> PageInfo {
        PageInfo {
            width: Some(w),
            height: Some(h),
            bytes: 10,
        }
    }

    #[test]
    fn generated_and_updated() {
        let x = generate(&[p(10, 20), PageInfo::default()]);
        assert!(x.contains("<PageCount>2</PageCount>"));
        assert!(x.contains(
            "<Page Image=\"0\" Type=\"FrontCover\" ImageSize=\"10\" ImageWidth=\"10\" ImageHeight=\"20\" />"
        ));
        assert!(x.contains("<Page Image=\"1\" ImageSize=\"0\" />"));
        let kept = "<?xml version=\"1.0\"?>\n<ComicInfo>\n  <Title>A &amp; B</Title>\n  \
                    <PageCount>3</PageCount>\n  <Pages>\n    <Page Image=\"0\"/>\n  </Pages>\n  \
                    <PagesX>keep</PagesX>\n</ComicInfo>\n";
        let u = update(kept, &[p(1, 2)]).unwrap();
        assert!(u.contains("<Title>A &amp; B</Title>"));
        assert!(u.contains("<PageCount>1</PageCount>"));
        assert!(u.contains("<PagesX>keep</PagesX>"));
        assert_eq!(u.matches("<Page ").count(), 1);
        let bare = update("<ComicInfo><Pages/></ComicInfo>", &[p(1, 2)]).unwrap();
        assert!(bare.contains("<PageCount>1</PageCount>") && bare.contains("ImageWidth=\"1\""));
        assert_eq!(update("<other/>", &[]), None);
    }
}
