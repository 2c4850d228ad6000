//! Byte units, below both [`crate::budget`] and [`crate::system`] (each reads the
//! other's figures in messages; neither imports the other for this).

/// Bytes in a mebibyte, for readable constants.
pub const MIB: u64 = 1 << 20;

/// Bytes in binary units, as people read them (`64.0 MiB`).
pub fn human_bytes(bytes: u64) -> String {
    bytesize::ByteSize(bytes).display().iec().to_string()
}
