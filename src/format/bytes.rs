//! Bounds-checked little-endian (native, x86_64/aarch64) readers and the format error type.
//!
//! PostgreSQL writes its structures in native byte order with native C alignment; pgsalvage
//! supports the little-endian LP64 platforms PostgreSQL ships on (x86_64, aarch64). A file
//! from a big-endian machine is detected where the format allows (pg_control) and refused.

use std::fmt;

/// A format error: what structure, where (byte offset inside the bytes given to the parser),
/// what was expected and what was found. The I/O layer adds the file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    #[error("{what}: truncated: need {needed} bytes at offset {offset}, but only {have} bytes are there")]
    Truncated { what: &'static str, offset: usize, needed: usize, have: usize },
    #[error("{what}: CRC mismatch: stored {stored:#010x} at offset {offset}, computed {computed:#010x} over bytes 0..{offset}")]
    BadCrc { what: &'static str, offset: usize, stored: u32, computed: u32 },
    #[error("{what}: bad value at offset {offset}: expected {expected}, found {found}")]
    BadValue { what: &'static str, offset: usize, expected: String, found: String },
    #[error("{what}: unsupported version at offset {offset}: {found} (pgsalvage reads PostgreSQL 10 to 18)")]
    UnsupportedVersion { what: &'static str, offset: usize, found: String },
}

impl FormatError {
    pub fn bad(what: &'static str, offset: usize, expected: impl fmt::Display, found: impl fmt::Display) -> Self {
        FormatError::BadValue { what, offset, expected: expected.to_string(), found: found.to_string() }
    }
    /// The byte offset the error points at.
    pub fn offset(&self) -> usize {
        match self {
            FormatError::Truncated { offset, .. }
            | FormatError::BadCrc { offset, .. }
            | FormatError::BadValue { offset, .. }
            | FormatError::UnsupportedVersion { offset, .. } => *offset,
        }
    }
    /// The same error with its offset moved by `base` (when a parser ran on a sub-slice).
    pub fn shifted(mut self, base: usize) -> Self {
        match &mut self {
            FormatError::Truncated { offset, .. }
            | FormatError::BadCrc { offset, .. }
            | FormatError::BadValue { offset, .. }
            | FormatError::UnsupportedVersion { offset, .. } => *offset += base,
        }
        self
    }
}

/// A named view over bytes with checked fixed-offset reads.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub what: &'static str,
    pub bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(what: &'static str, bytes: &'a [u8]) -> Self {
        Reader { what, bytes }
    }
    /// Fails unless `len` bytes exist at `offset`.
    pub fn need(&self, offset: usize, len: usize) -> Result<&'a [u8], FormatError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.bytes.len() => Ok(&self.bytes[offset..end]),
            _ => Err(FormatError::Truncated { what: self.what, offset, needed: len, have: self.bytes.len().saturating_sub(offset) }),
        }
    }
    pub fn u8(&self, o: usize) -> Result<u8, FormatError> {
        Ok(self.need(o, 1)?[0])
    }
    pub fn u16(&self, o: usize) -> Result<u16, FormatError> {
        let b = self.need(o, 2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&self, o: usize) -> Result<u32, FormatError> {
        let b = self.need(o, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&self, o: usize) -> Result<i32, FormatError> {
        Ok(self.u32(o)? as i32)
    }
    pub fn u64(&self, o: usize) -> Result<u64, FormatError> {
        let b = self.need(o, 8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    pub fn i64(&self, o: usize) -> Result<i64, FormatError> {
        Ok(self.u64(o)? as i64)
    }
    pub fn f64(&self, o: usize) -> Result<f64, FormatError> {
        Ok(f64::from_bits(self.u64(o)?))
    }
    pub fn bool(&self, o: usize) -> Result<bool, FormatError> {
        let v = self.u8(o)?;
        match v {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(FormatError::bad(self.what, o, "a C bool (0 or 1)", v)),
        }
    }
}

/// Writers used by encoders; they panic only on programmer error (offset past a buffer the
/// encoder sized itself), never on input.
/// The little-endian u32 at `o`, or None past the end: for scans that skip what does not
/// fit rather than report it (a [`Reader`] says where and why).
pub fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    b.get(o..o.checked_add(4)?).map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]))
}

pub fn put_u16(buf: &mut [u8], o: usize, v: u16) {
    buf[o..o + 2].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u32(buf: &mut [u8], o: usize, v: u32) {
    buf[o..o + 4].copy_from_slice(&v.to_le_bytes());
}
pub fn put_u64(buf: &mut [u8], o: usize, v: u64) {
    buf[o..o + 8].copy_from_slice(&v.to_le_bytes());
}

/// Round `v` up to a multiple of `a` (a power of two), as PostgreSQL's TYPEALIGN.
pub const fn align_up(v: usize, a: usize) -> usize {
    (v + a - 1) & !(a - 1)
}

/// MAXALIGN on the supported platforms (MAXIMUM_ALIGNOF = 8).
pub const fn maxalign(v: usize) -> usize {
    align_up(v, 8)
}

/// Lay out a C struct field by field with LP64 alignment rules, so each per-major struct
/// description in this crate is a list of members, not a table of hand-computed offsets.
#[derive(Debug, Default, Clone)]
pub struct CLayout {
    size: usize,
    align: usize,
}

impl CLayout {
    pub fn new() -> Self {
        CLayout { size: 0, align: 1 }
    }
    /// Append a member of `size` bytes with alignment `align`; returns its offset.
    pub fn member(&mut self, size: usize, align: usize) -> usize {
        let off = align_up(self.size, align);
        self.size = off + size;
        self.align = self.align.max(align);
        off
    }
    pub fn bool(&mut self) -> usize {
        self.member(1, 1)
    }
    pub fn u32(&mut self) -> usize {
        self.member(4, 4)
    }
    pub fn u64(&mut self) -> usize {
        self.member(8, 8)
    }
    /// Append a nested struct of `size`/`align` (as computed by another CLayout).
    pub fn nested(&mut self, inner: &CLayout) -> usize {
        self.member(inner.size(), inner.align)
    }
    /// sizeof(): the size rounded up to the struct's alignment.
    pub fn size(&self) -> usize {
        align_up(self.size, self.align)
    }
    /// The offset just past the last member (offsetof the next member before alignment).
    pub fn end(&self) -> usize {
        self.size
    }
}

/// Lower-case hex of bytes (hand-written: four lines are not worth a dependency).
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Bytes of lower- or upper-case hex; None for an odd length or a non-hex digit.
pub fn from_hex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok())).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn reader_reports_truncation_with_offset() {
        let r = Reader::new("thing", &[1, 2, 3]);
        assert_eq!(r.u16(0).unwrap(), 0x0201);
        let e = r.u32(1).unwrap_err();
        assert_eq!(e, FormatError::Truncated { what: "thing", offset: 1, needed: 4, have: 2 });
        assert!(r.u64(usize::MAX - 2).is_err());
    }

    #[test]
    fn clayout_matches_c_rules() {
        let mut l = CLayout::new();
        assert_eq!(l.u64(), 0);
        assert_eq!(l.u32(), 8);
        assert_eq!(l.bool(), 12);
        assert_eq!(l.u64(), 16);
        assert_eq!(l.bool(), 24);
        assert_eq!(l.size(), 32);
    }
}
