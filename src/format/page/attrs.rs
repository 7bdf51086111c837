//! A heap tuple's attributes, decoded from the table's columns as the catalog describes them
//! (pg_attribute's attlen and attalign), with every check verify_heapam's
//! `check_tuple_attribute` makes before it trusts a length: where each attribute starts and
//! ends within the tuple, varlena headers (`varatt.h`: 1-byte, 4-byte, compressed,
//! external), TOAST tags and pointers, compression method ids. Pure: the caller finds the
//! TOAST chunks.
//!
//! ```text
//! data := (pad attribute)*      alignment relative to the tuple start (t_hoff is MAXALIGNed)
//! varlena (little-endian) := 1B: b0&1=1, length b0>>1 (b0=0x01: external, tag in b1)
//!                          | 4B: b0&3=0, length u32>>2 | 4B_C: b0&3=2, then tcinfo:u32
//!                            (rawsize:30, method:2 from PG14)
//! external on disk (tag 18) := 0x01 18 va_rawsize:i32 va_extinfo:u32 va_valueid:u32
//!                              va_toastrelid:u32   (unaligned; extsize:30 method:2 from PG14)
//! ```
//! A varlena is not aligned when its first byte is not zero (a short or external header):
//! padding is always zero (`att_align_pointer`).

use super::heap::{infomask, HeapTupleHeader, SIZEOF_HEAP_TUPLE_HEADER};
use crate::format::bytes::u32_at;
use serde::{Deserialize, Serialize};

/// VARTAG_ONDISK: the only TOAST tag stored on disk.
pub const VARTAG_ONDISK: u8 = 18;
/// VARLENA_SIZE_LIMIT: no value is larger.
pub const VARLENA_SIZE_LIMIT: u32 = 0x3FFF_FFFF;
/// Size of an on-disk TOAST pointer with its 2-byte header.
pub const TOAST_POINTER_SIZE: usize = 2 + 16;

/// One column as the tuple layout needs it: pg_attribute.attlen (-1 varlena, -2 cstring)
/// and attalign (`c`, `s`, `i`, `d`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub len: i16,
    pub align: char,
}

impl Column {
    fn alignment(&self) -> usize {
        match self.align {
            's' => 2,
            'i' => 4,
            'd' => 8,
            _ => 1,
        }
    }
}

/// An on-disk TOAST pointer (varatt_external).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct ToastPointer {
    /// Original size of the value, header included.
    pub rawsize: i32,
    /// Size stored in the TOAST table, without header.
    pub extsize: u32,
    /// The compression method id, when the stored value is compressed.
    pub method: Option<u8>,
    pub valueid: u32,
    pub toastrelid: u32,
}

impl ToastPointer {
    /// The pointer's compression method id, when it is one no server knows (2, 3).
    pub fn method_invalid(&self) -> Option<u8> {
        self.method.filter(|&m| m > 1)
    }
    /// The pointer with its compression method id set to `method` (kept: the sizes).
    pub fn extinfo_with_method(&self, method: u8) -> u32 {
        (self.extsize & VARLENA_SIZE_LIMIT) | ((method as u32) << 30)
    }
    /// How many chunks the value is stored in, and the size of the last.
    pub fn chunks(&self, chunk_size: u32) -> (u32, u32) {
        if self.extsize == 0 || chunk_size == 0 {
            return (0, 0);
        }
        let n = (self.extsize - 1) / chunk_size + 1;
        (n, self.extsize - (n - 1) * chunk_size)
    }
}

/// What an attribute holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Value {
    Null,
    /// Fixed length, cstring, or an uncompressed inline varlena.
    Plain,
    /// An inline compressed varlena, with its method id.
    Compressed(u8),
    External(ToastPointer),
    /// Its length is sound (the next attribute can be found) but its content is not: a
    /// compression method id no server knows, a TOAST pointer that contradicts itself.
    Broken(String),
}

/// One attribute present in the tuple (attributes past natts are absent: their values are
/// the column defaults from attmissingval or NULL).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Attr {
    /// From 1.
    pub attnum: u16,
    /// Offset from the tuple's start (not from t_hoff), and length; 0 for a NULL.
    pub off: usize,
    pub len: usize,
    pub value: Value,
}

/// An attribute whose length cannot be trusted: nothing after it can be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttrError {
    pub attnum: u16,
    pub detail: String,
}

/// Whether attribute `attnum` (from 1) is NULL in the tuple's null bitmap.
pub fn is_null(tuple: &[u8], h: &HeapTupleHeader, attnum: u16) -> bool {
    if !h.has(infomask::HASNULL) {
        return false;
    }
    let i = attnum as usize - 1;
    tuple.get(SIZEOF_HEAP_TUPLE_HEADER + i / 8).is_some_and(|b| b & (1 << (i % 8)) == 0)
}

/// Decode the attributes of `tuple` (the whole tuple, header included, lp_len long) with
/// the table's `columns` (dropped ones included, in attnum order). `major` decides where
/// compression method ids live (PG14+). The header must already have passed its own checks
/// (natts not past the columns, t_hoff where it belongs).
pub fn decode(tuple: &[u8], h: &HeapTupleHeader, columns: &[Column], major: u32) -> Result<Vec<Attr>, AttrError> {
    let natts = h.natts();
    let total = tuple.len();
    let mut off = h.hoff as usize;
    let mut out = Vec::with_capacity(natts as usize);
    for attnum in 1..=natts {
        let Some(col) = columns.get(attnum as usize - 1) else {
            return Err(AttrError { attnum, detail: format!("number of attributes {natts} exceeds the table's {}", columns.len()) });
        };
        if off > total {
            return Err(AttrError {
                attnum,
                detail: format!("attribute {attnum} with length {} starts at offset {off} beyond total tuple length {total}", col.len),
            });
        }
        if is_null(tuple, h, attnum) {
            out.push(Attr { attnum, off, len: 0, value: Value::Null });
            continue;
        }
        let ends_beyond = |end: usize| AttrError {
            attnum,
            detail: format!("attribute {attnum} with length {} ends at offset {end} beyond total tuple length {total}", col.len),
        };
        // A varlena starting with a non-zero byte is a short or external one: never padded.
        if !(col.len == -1 && tuple.get(off).is_some_and(|&b| b != 0)) {
            off = off.div_ceil(col.alignment()) * col.alignment();
        }
        let (len, value) = match col.len {
            n if n > 0 => (n as usize, Value::Plain),
            -2 => match tuple.get(off..).and_then(|b| b.iter().position(|&c| c == 0)) {
                Some(p) => (p + 1, Value::Plain),
                None => return Err(ends_beyond(total + 1)),
            },
            -1 => {
                let Some(&b0) = tuple.get(off) else { return Err(ends_beyond(off + 1)) };
                if b0 == 0x01 {
                    let Some(&tag) = tuple.get(off + 1) else { return Err(ends_beyond(off + 2)) };
                    if tag != VARTAG_ONDISK {
                        return Err(AttrError { attnum, detail: format!("toasted attribute {attnum} has unexpected TOAST tag {tag}") });
                    }
                    if off + TOAST_POINTER_SIZE > total {
                        return Err(ends_beyond(off + TOAST_POINTER_SIZE));
                    }
                    (TOAST_POINTER_SIZE, toast_pointer(&tuple[off + 2..off + TOAST_POINTER_SIZE], major))
                } else if b0 & 0x01 == 0x01 {
                    ((b0 >> 1) as usize, Value::Plain)
                } else {
                    let Some(raw) = u32_at(tuple, off) else { return Err(ends_beyond(off + 4)) };
                    let len = (raw >> 2) as usize;
                    if len < 4 || (b0 & 0x03 == 0x02 && len < 8) {
                        return Err(AttrError {
                            attnum,
                            detail: format!("attribute {attnum} has a varlena header claiming length {len}, less than its own header"),
                        });
                    }
                    if off + len > total {
                        return Err(ends_beyond(off + len));
                    }
                    if b0 & 0x03 == 0x02 {
                        let tcinfo = u32_at(tuple, off + 4).unwrap_or(0);
                        (len, compressed(tcinfo, major))
                    } else {
                        (len, Value::Plain)
                    }
                }
            }
            n => return Err(AttrError { attnum, detail: format!("column {attnum} has attlen {n}, which no type has") }),
        };
        if off + len > total {
            return Err(ends_beyond(off + len));
        }
        out.push(Attr { attnum, off, len, value });
        off += len;
    }
    Ok(out)
}

/// An inline compressed value: its method (PG14+: the top two bits of va_tcinfo; before,
/// the whole word is the raw size and the method is pglz).
fn compressed(tcinfo: u32, major: u32) -> Value {
    if major >= 14 {
        match tcinfo >> 30 {
            m @ (0 | 1) => Value::Compressed(m as u8),
            m => Value::Broken(format!("compressed value has invalid compression method id {m}")),
        }
    } else if tcinfo > VARLENA_SIZE_LIMIT {
        Value::Broken(format!("compressed value has raw size {tcinfo}, past the limit {VARLENA_SIZE_LIMIT}"))
    } else {
        Value::Compressed(0)
    }
}

/// The 16 bytes after an external header.
fn toast_pointer(b: &[u8], major: u32) -> Value {
    let rawsize = u32_at(b, 0).unwrap_or(0) as i32;
    let extinfo = u32_at(b, 4).unwrap_or(0);
    let valueid = u32_at(b, 8).unwrap_or(0);
    let toastrelid = u32_at(b, 12).unwrap_or(0);
    let extsize = if major >= 14 { extinfo & VARLENA_SIZE_LIMIT } else { extinfo };
    let is_compressed = (extsize as i64) < rawsize as i64 - 4;
    let method = is_compressed.then_some(if major >= 14 { (extinfo >> 30) as u8 } else { 0 });
    let p = ToastPointer { rawsize, extsize, method, valueid, toastrelid };
    if rawsize < 0 || rawsize as u32 > VARLENA_SIZE_LIMIT {
        return Value::Broken(format!("toast value {valueid} rawsize {rawsize} exceeds limit {VARLENA_SIZE_LIMIT}"));
    }
    if extsize as i64 > rawsize as i64 - 4 {
        return Value::Broken(format!("toast value {valueid} external size {extsize} exceeds maximum expected for rawsize {rawsize}"));
    }
    // A compression method id no server knows, or HEAP_HASEXTERNAL unset, are left to the
    // caller: the value's own first chunk holds its method (the server decompresses by
    // that one), so the pointer can be mended (see [`ToastPointer::method_invalid`]).
    Value::External(p)
}

/// The tuple with the attributes `nulls` set to NULL, laid out again (following attributes
/// moved back, realigned), as `heap_fill_tuple` would have written it: a null bitmap added
/// when there was none (t_hoff grows), HEAP_HASEXTERNAL kept only while an external value
/// remains. `oid_bytes`: the 4-byte oid before t_hoff of a WITH OIDS tuple (before PG12),
/// kept. None when the attributes cannot be decoded.
pub fn with_nulls(tuple: &[u8], h: &HeapTupleHeader, columns: &[Column], major: u32, nulls: &[u16], maxalign: usize) -> Option<Vec<u8>> {
    let attrs = decode(tuple, h, columns, major).ok()?;
    let natts = h.natts() as usize;
    let oid = if major < 12 && h.has(infomask::HASOID_OLD) { 4 } else { 0 };
    let bitmap = natts.div_ceil(8);
    let hoff = (SIZEOF_HEAP_TUPLE_HEADER + bitmap + oid).div_ceil(maxalign) * maxalign;
    // The oid is copied from before the old t_hoff: it must lie inside the old header.
    if hoff > 255 || (oid > 0 && (h.hoff as usize) < SIZEOF_HEAP_TUPLE_HEADER + oid) {
        return None;
    }
    let mut out = tuple[..SIZEOF_HEAP_TUPLE_HEADER].to_vec();
    out.resize(hoff, 0);
    let mut external = false;
    for a in &attrs {
        let null = matches!(a.value, Value::Null) || nulls.contains(&a.attnum);
        let i = a.attnum as usize - 1;
        if !null {
            out[SIZEOF_HEAP_TUPLE_HEADER + i / 8] |= 1 << (i % 8);
        }
    }
    if oid > 0 {
        out[hoff - 4..hoff].copy_from_slice(&tuple[h.hoff as usize - 4..h.hoff as usize]);
    }
    for a in &attrs {
        if matches!(a.value, Value::Null) || nulls.contains(&a.attnum) {
            continue;
        }
        let col = columns[a.attnum as usize - 1];
        let bytes = &tuple[a.off..a.off + a.len];
        if !(col.len == -1 && bytes.first().is_some_and(|&b| b != 0)) {
            let at = out.len() - hoff;
            out.resize(hoff + at.div_ceil(col.alignment()) * col.alignment(), 0);
        }
        external |= matches!(a.value, Value::External(_)) || (col.len == -1 && bytes.first() == Some(&0x01));
        out.extend_from_slice(bytes);
    }
    let mut mask = h.infomask | infomask::HASNULL;
    if !external {
        mask &= !infomask::HASEXTERNAL;
    }
    out[20..22].copy_from_slice(&mask.to_le_bytes());
    out[22] = hoff as u8;
    Some(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn header(natts: u16, mask: u16, hoff: u8) -> Vec<u8> {
        let mut t = vec![0u8; hoff as usize];
        t[18..20].copy_from_slice(&natts.to_le_bytes());
        t[20..22].copy_from_slice(&mask.to_le_bytes());
        t[22] = hoff;
        t
    }

    const INT: Column = Column { len: 4, align: 'i' };
    const TEXT: Column = Column { len: -1, align: 'i' };

    #[test]
    fn decodes_int_short_text_and_toast_pointer() {
        let mut t = header(3, infomask::HASVARWIDTH | infomask::HASEXTERNAL, 24);
        t.extend_from_slice(&7u32.to_le_bytes()); // int at 24
        t.extend_from_slice(&[(4 << 1) | 1, b'a', b'b', b'c']); // short varlena at 28
        t.extend_from_slice(&[0x01, 18]); // external at 32, unaligned allowed
        t.extend_from_slice(&10_004i32.to_le_bytes());
        t.extend_from_slice(&10_000u32.to_le_bytes());
        t.extend_from_slice(&16_400u32.to_le_bytes());
        t.extend_from_slice(&16_390u32.to_le_bytes());
        let h = HeapTupleHeader::parse(&t).unwrap();
        let a = decode(&t, &h, &[INT, TEXT, TEXT], 15).unwrap();
        assert_eq!(a.iter().map(|a| (a.off, a.len)).collect::<Vec<_>>(), vec![(24, 4), (28, 4), (32, 18)]);
        let Value::External(p) = &a[2].value else { panic!("{a:?}") };
        assert_eq!((p.valueid, p.toastrelid, p.extsize, p.method), (16_400, 16_390, 10_000, None));
        assert_eq!(p.chunks(1996), (6, 10_000 - 5 * 1996));
    }

    #[test]
    fn a_length_past_the_tuple_stops_decoding() {
        let mut t = header(2, infomask::HASVARWIDTH, 24);
        t.extend_from_slice(&(400u32 << 2).to_le_bytes());
        t.extend_from_slice(b"abcd");
        t.extend_from_slice(&7u32.to_le_bytes());
        let h = HeapTupleHeader::parse(&t).unwrap();
        let e = decode(&t, &h, &[TEXT, INT], 15).unwrap_err();
        assert_eq!(e.attnum, 1);
        assert!(e.detail.contains("ends at offset 424 beyond total tuple length 36"), "{}", e.detail);
    }

    #[test]
    fn compression_ids_by_major() {
        let mut t = header(1, infomask::HASVARWIDTH, 24);
        t.extend_from_slice(&((12u32 << 2) | 2).to_le_bytes());
        t.extend_from_slice(&(3u32 << 30 | 100).to_le_bytes());
        t.extend_from_slice(b"abcd");
        let h = HeapTupleHeader::parse(&t).unwrap();
        assert_eq!(decode(&t, &h, &[TEXT], 15).unwrap()[0].value, Value::Broken("compressed value has invalid compression method id 3".into()));
        assert!(matches!(decode(&t, &h, &[TEXT], 13).unwrap()[0].value, Value::Broken(_)));
    }

    #[test]
    fn nulls_are_laid_out_again() {
        // int, text (external), int: the external set NULL, no bitmap before.
        let mut t = header(3, infomask::HASVARWIDTH | infomask::HASEXTERNAL, 24);
        t.extend_from_slice(&7u32.to_le_bytes());
        t.extend_from_slice(&[0x01, 18]);
        t.extend_from_slice(&10_004i32.to_le_bytes());
        t.extend_from_slice(&10_000u32.to_le_bytes());
        t.extend_from_slice(&16_400u32.to_le_bytes());
        t.extend_from_slice(&16_390u32.to_le_bytes());
        t.extend_from_slice(&[0, 0]); // pad to 4
        t.extend_from_slice(&9u32.to_le_bytes());
        let h = HeapTupleHeader::parse(&t).unwrap();
        let n = with_nulls(&t, &h, &[INT, TEXT, INT], 15, &[2], 8).unwrap();
        assert!(n.len() <= t.len());
        let h2 = HeapTupleHeader::parse(&n).unwrap();
        assert!(h2.has(infomask::HASNULL) && !h2.has(infomask::HASEXTERNAL));
        let a = decode(&n, &h2, &[INT, TEXT, INT], 15).unwrap();
        assert_eq!(a[1].value, Value::Null);
        assert_eq!(&n[a[2].off..a[2].off + 4], &9u32.to_le_bytes());
        assert_eq!(&n[a[0].off..a[0].off + 4], &7u32.to_le_bytes());
    }
}
