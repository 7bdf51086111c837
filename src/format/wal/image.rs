//! Full-page images in WAL records (XLogRecordBlockImageHeader, RestoreBlockImage in
//! `xlogreader.c`): a page as it was when the record was written, stored without its
//! unused middle (the "hole") and possibly compressed.
//!
//! ```text
//! XLogRecordBlockImageHeader := length:u16 hole_offset:u16 bimg_info:u8
//!                               [hole_length:u16 if HAS_HOLE and compressed]
//! bimg_info 10–14: HAS_HOLE 0x01, IS_COMPRESSED 0x02 (pglz), APPLY 0x04
//! bimg_info 15+:   HAS_HOLE 0x01, APPLY 0x02, COMPRESS_PGLZ 0x04, _LZ4 0x08, _ZSTD 0x10
//! ```

use crate::format::bytes::FormatError;
use crate::format::version::PgMajor;
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageCompression {
    Pglz,
    Lz4,
    Zstd,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ImageInfo {
    pub hole_offset: u16,
    /// Stored only for compressed images with a hole.
    pub hole_length: Option<u16>,
    pub has_hole: bool,
    /// Replay restores the page from the image (not an image for consistency checks only).
    pub apply: bool,
    pub compression: Option<ImageCompression>,
}

pub fn compression(major: PgMajor, bimg_info: u8) -> Option<ImageCompression> {
    if major.number() >= 15 {
        match bimg_info & 0x1C {
            0x04 => Some(ImageCompression::Pglz),
            0x08 => Some(ImageCompression::Lz4),
            0x10 => Some(ImageCompression::Zstd),
            _ => None,
        }
    } else {
        (bimg_info & 0x02 != 0).then_some(ImageCompression::Pglz)
    }
}

pub fn applies(major: PgMajor, bimg_info: u8) -> bool {
    bimg_info & if major.number() >= 15 { 0x02 } else { 0x04 } != 0
}

/// The whole page an image stands for (`bytes` is the image as stored), BLCKSZ `bs`.
pub fn restore(bytes: &[u8], info: &ImageInfo, bs: usize) -> Result<Vec<u8>, FormatError> {
    let bad = |what: &str, found: String| FormatError::bad("full-page image", 0, what.to_string(), found);
    let hole_len = match (info.has_hole, info.hole_length, info.compression) {
        (false, ..) => 0,
        (true, Some(l), _) => l as usize,
        (true, None, None) => bs.checked_sub(bytes.len()).ok_or_else(|| bad("an image no longer than a page", format!("{} bytes", bytes.len())))?,
        (true, None, Some(_)) => return Err(bad("a hole length for a compressed image", "none".into())),
    };
    let want = bs.checked_sub(hole_len).ok_or_else(|| bad("a hole inside the page", format!("{hole_len} bytes")))?;
    let raw = match info.compression {
        None => bytes.to_vec(),
        Some(ImageCompression::Pglz) => pglz_decompress(bytes, want).ok_or_else(|| bad("pglz data", "undecodable bytes".into()))?,
        Some(ImageCompression::Lz4) => {
            let mut out = vec![0u8; want];
            match lz4_flex::block::decompress_into(bytes, &mut out) {
                Ok(n) if n == want => out,
                _ => return Err(bad("lz4 data", "undecodable bytes".into())),
            }
        }
        Some(ImageCompression::Zstd) => zstd::bulk::decompress(bytes, want).map_err(|e| bad("zstd data", e.to_string()))?,
    };
    if raw.len() != want {
        return Err(bad(&format!("{want} bytes of page"), format!("{} bytes", raw.len())));
    }
    let off = info.hole_offset as usize;
    if off > want {
        return Err(bad("a hole offset inside the image", off.to_string()));
    }
    let mut page = Vec::with_capacity(bs);
    page.extend_from_slice(&raw[..off]);
    page.resize(off + hole_len, 0);
    page.extend_from_slice(&raw[off..]);
    Ok(page)
}

/// PostgreSQL's own LZ compression (`common/pg_lzcompress.c`, pglz_decompress), which no
/// crate implements: a control byte, then 8 items, each a literal byte (bit 0) or a
/// back-reference (bit 1) of 2 or 3 bytes: length 3–18 (+ an extra byte up to 273),
/// offset 1–4095. Exactly `rawsize` bytes out, or None.
pub fn pglz_decompress(src: &[u8], rawsize: usize) -> Option<Vec<u8>> {
    let mut out: Vec<u8> = Vec::with_capacity(rawsize);
    let mut i = 0;
    while i < src.len() && out.len() < rawsize {
        let ctrl = src[i];
        i += 1;
        for bit in 0..8 {
            if i >= src.len() || out.len() >= rawsize {
                break;
            }
            if ctrl & (1 << bit) != 0 {
                let (b0, b1) = (*src.get(i)? as usize, *src.get(i + 1)? as usize);
                let mut len = (b0 & 0x0f) + 3;
                let off = ((b0 & 0xf0) << 4) | b1;
                i += 2;
                if len == 18 {
                    len += *src.get(i)? as usize;
                    i += 1;
                }
                if off == 0 || off > out.len() {
                    return None;
                }
                let len = len.min(rawsize - out.len());
                let start = out.len() - off;
                // Overlapping copies repeat the pattern, byte by byte.
                for k in 0..len {
                    let b = out[start + k];
                    out.push(b);
                }
            } else {
                out.push(src[i]);
                i += 1;
            }
        }
    }
    (out.len() == rawsize).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_is_zeroes_in_the_middle() {
        let info = ImageInfo { hole_offset: 4, hole_length: None, has_hole: true, apply: true, compression: None };
        let page = restore(&[1, 2, 3, 4, 5, 6, 7, 8], &info, 16).expect("restores");
        assert_eq!(page, vec![1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 6, 7, 8]);
        assert!(restore(&[0; 20], &info, 16).is_err());
    }

    #[test]
    fn pglz_literals_and_back_references() {
        // "abcabcabcX": 3 literals, a reference (offset 3, length 6), a literal.
        let src = [0b0000_1000, b'a', b'b', b'c', 0x03, 0x03, b'X'];
        assert_eq!(pglz_decompress(&src, 10).as_deref(), Some(&b"abcabcabcX"[..]));
        assert_eq!(pglz_decompress(&src, 11), None);
        assert_eq!(pglz_decompress(&[0b1, 0x00, 0x05], 3), None, "a reference before any output");
    }
}
