//! Institutional encoding profiles: named sets of JPEG 2000 parameters, each from a
//! published source (listed in `--help` and the man page). Options given on the command
//! line override a profile's values.

pub use crate::encode::layer_rates;
use crate::encode::{Order, TileParts};

/// A profile's parameters. `None` leaves the default (or the option) in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The name given to `--profile`.
    pub name: &'static str,
    /// Irreversible 9/7 wavelet.
    pub irreversible: bool,
    /// Target compression ratio of the final layer (lossy profiles).
    pub ratio: Option<f32>,
    /// Decomposition levels asked for (capped by tile and image size).
    pub levels: u8,
    /// Quality layers.
    pub layers: u32,
    /// Progression order.
    pub order: Order,
    /// Tile side.
    pub tile: u32,
    /// Code-block side.
    pub codeblock: u32,
    /// Precincts, highest resolution first.
    pub precincts: &'static [(u32, u32)],
    /// SOP markers.
    pub sop: bool,
    /// EPH markers.
    pub eph: bool,
    /// PLT markers.
    pub plt: bool,
    /// Code-block style flags (see [`crate::encode::EncodeParams::cblk_style`]).
    pub cblk_style: u8,
    /// Tile-parts.
    pub tileparts: Option<TileParts>,
    /// Write the XMP uuid box with the Dublin Core fields from the options.
    pub xmp_fields: bool,
    /// Where the parameters come from.
    pub source: &'static str,
}

const P256_128: &[(u32, u32)] = &[(256, 256), (256, 256), (128, 128)];

/// Every profile.
pub fn all() -> Vec<Profile> {
    vec![
        Profile {
            name: "bnf",
            irreversible: true,
            // 1:4 for photographs and heritage documents; 1:6 colour print and 1:16
            // greyscale are chosen by `--bnf-class`.
            ratio: Some(4.0),
            levels: 10,
            layers: 10,
            order: Order::Rpcl,
            tile: tile("bnf"),
            codeblock: 64,
            precincts: P256_128,
            sop: true,
            eph: true,
            plt: true,
            cblk_style: 0,
            tileparts: None,
            xmp_fields: true,
            source: "BnF, Référentiel de format de fichier image v2 (2015), JPEG 2000 profile",
        },
        Profile {
            name: "kb-master",
            irreversible: false,
            ratio: None,
            levels: 5,
            layers: 11,
            order: Order::Rpcl,
            tile: tile("kb-master"),
            codeblock: 64,
            precincts: P256_128,
            sop: true,
            eph: true,
            plt: false,
            // Segmentation symbols.
            cblk_style: 32,
            tileparts: None,
            xmp_fields: false,
            source: "KB (National Library of the Netherlands), JP2 master image profile \
                     (Gillesse, Rog & Verheusen 2008; van der Knijff 2011)",
        },
        Profile {
            name: "kb-access",
            irreversible: true,
            ratio: Some(20.0),
            levels: 5,
            layers: 8,
            order: Order::Rpcl,
            tile: tile("kb-access"),
            codeblock: 64,
            precincts: P256_128,
            sop: true,
            eph: true,
            plt: false,
            cblk_style: 32,
            tileparts: None,
            xmp_fields: false,
            source: "KB, JP2 access image profile (as kb-master, 9/7, 8 layers, about 20:1)",
        },
        Profile {
            name: "loc-ndnp",
            irreversible: true,
            ratio: Some(8.0),
            levels: 6,
            layers: 25,
            order: Order::Rlcp,
            tile: tile("loc-ndnp"),
            codeblock: 64,
            precincts: &[],
            sop: false,
            eph: false,
            plt: false,
            // Selective arithmetic coding bypass.
            cblk_style: 1,
            tileparts: None,
            xmp_fields: false,
            source: "Library of Congress, National Digital Newspaper Program technical \
                     guidelines (JPEG 2000 production master, about 1:8)",
        },
    ]
}

/// A profile's tile side, from the table the cost model plans with (a test ties the
/// two lists of names).
fn tile(name: &str) -> u32 {
    membudget::cost::strip_convert::profile_tile(name).unwrap_or(0)
}

/// The profile named `name`.
pub fn find(name: &str) -> Option<Profile> {
    all().into_iter().find(|p| p.name == name)
}

/// The names, for clap's possible values.
pub fn names() -> Vec<&'static str> {
    all().iter().map(|p| p.name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_decrease_to_the_target() {
        let r = layer_rates(4.0, 10);
        assert_eq!(r.len(), 10);
        assert!(r.windows(2).all(|w| w[0] > w[1]));
        assert!((r[9] - 4.0).abs() < 0.01);
        assert_eq!(layer_rates(8.0, 1), vec![8.0]);
    }

    #[test]
    fn profiles_are_found() {
        assert!(find("bnf").is_some());
        assert_eq!(names().len(), 4);
        // The cost model plans `--profile` with the same names and tiles.
        let planned: Vec<&str> = membudget::cost::strip_convert::PROFILE_TILES
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names(), planned);
        assert!(all().iter().all(|p| p.tile > 0), "{:?}", all());
    }
}
