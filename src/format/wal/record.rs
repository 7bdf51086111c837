//! WAL records: the XLogRecord header, its CRC, block references and main data
//! (`access/xlogrecord.h`, DecodeXLogRecord in `xlogreader.c`).

use super::super::bytes::{FormatError, Reader};
use super::super::control::CheckPoint;
use super::super::types::{Lsn, Xid};
use super::super::version::PgMajor;
use serde::Serialize;
use std::ops::Range;

pub const SIZE_OF_XLOG_RECORD: usize = 24;
/// offsetof(XLogRecord, xl_crc).
pub const XL_CRC_OFFSET: usize = 20;
pub const XLR_MAX_BLOCK_ID: u8 = 32;
pub const XLR_BLOCK_ID_DATA_SHORT: u8 = 255;
pub const XLR_BLOCK_ID_DATA_LONG: u8 = 254;
pub const XLR_BLOCK_ID_ORIGIN: u8 = 253;
/// PG14+.
pub const XLR_BLOCK_ID_TOPLEVEL_XID: u8 = 252;
pub const BKPBLOCK_HAS_IMAGE: u8 = 0x10;
pub const BKPBLOCK_HAS_DATA: u8 = 0x20;
pub const BKPBLOCK_SAME_REL: u8 = 0x80;
pub const BKPIMAGE_HAS_HOLE: u8 = 0x01;

pub const RM_XLOG_ID: u8 = 0;
pub const RM_XACT_ID: u8 = 1;
pub const XLOG_CHECKPOINT_SHUTDOWN: u8 = 0x00;
pub const XLOG_CHECKPOINT_ONLINE: u8 = 0x10;
pub const XLOG_SWITCH: u8 = 0x40;
/// RM_MAX_BUILTIN_ID (RM_MAX_ID before 15): the last built-in resource manager.
pub const RM_MAX_BUILTIN_ID: u8 = 21;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RecordHeader {
    pub tot_len: u32,
    pub xid: Xid,
    pub prev: Lsn,
    pub info: u8,
    pub rmid: u8,
    pub crc: u32,
}

impl RecordHeader {
    pub fn parse(b: &[u8]) -> Result<RecordHeader, FormatError> {
        let r = Reader::new("WAL record header", b);
        r.need(0, SIZE_OF_XLOG_RECORD)?;
        Ok(RecordHeader { tot_len: r.u32(0)?, xid: r.u32(4)?, prev: Lsn(r.u64(8)?), info: r.u8(16)?, rmid: r.u8(17)?, crc: r.u32(20)? })
    }
    /// RmgrIdIsValid for a major: built-in ids, plus custom ids 128–255 from PG15.
    pub fn rmid_valid(&self, major: PgMajor) -> bool {
        self.rmid <= RM_MAX_BUILTIN_ID || (major.number() >= 15 && self.rmid >= 128)
    }
}

/// The CRC of a whole record as the server computes it: the payload after the header, then
/// the header up to xl_crc. Total: bytes shorter than a header (which hold no stored CRC to
/// compare with) give the CRC of what there is.
pub fn record_crc(record: &[u8]) -> u32 {
    let c = crc32c::crc32c(record.get(SIZE_OF_XLOG_RECORD..).unwrap_or_default());
    crc32c::crc32c_append(c, &record[..XL_CRC_OFFSET.min(record.len())])
}

/// One block reference of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BlockRef {
    pub id: u8,
    pub fork: u8,
    pub has_image: bool,
    pub has_data: bool,
    pub spc_node: u32,
    pub db_node: u32,
    pub rel_node: u32,
    pub block: u32,
    /// How the image is stored, when the block carries one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image_info: Option<super::image::ImageInfo>,
    /// Byte ranges inside the record.
    pub image: Option<(usize, usize)>,
    pub data: Option<(usize, usize)>,
}

/// A whole record (header + payload) with its parts located.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DecodedRecord {
    pub lsn: Lsn,
    pub header: RecordHeader,
    pub blocks: Vec<BlockRef>,
    pub main_data: Range<usize>,
    pub origin: Option<u16>,
    pub toplevel_xid: Option<Xid>,
    #[serde(skip)]
    pub bytes: Vec<u8>,
}

impl DecodedRecord {
    pub fn main_data(&self) -> &[u8] {
        &self.bytes[self.main_data.clone()]
    }
    pub fn is_checkpoint(&self) -> bool {
        self.header.rmid == RM_XLOG_ID && matches!(self.header.info & 0xF0, XLOG_CHECKPOINT_SHUTDOWN | XLOG_CHECKPOINT_ONLINE)
    }
}

/// Split a complete, CRC-checked record into block references and main data, checking
/// every length against the record's (DecodeXLogRecord's "invalid ... at %X/%X" cases).
pub fn decode_record(major: PgMajor, lsn: Lsn, bytes: Vec<u8>) -> Result<DecodedRecord, FormatError> {
    let header = RecordHeader::parse(&bytes)?;
    let r = Reader::new("WAL record", &bytes);
    let end = header.tot_len as usize;
    if end != bytes.len() {
        return Err(FormatError::bad("WAL record", 0, format!("xl_tot_len {}", bytes.len()), end));
    }
    let mut pos = SIZE_OF_XLOG_RECORD;
    let mut blocks = Vec::new();
    let mut main_len = 0usize;
    let mut origin = None;
    let mut toplevel_xid = None;
    let mut payload_lens: Vec<(usize, usize)> = Vec::new(); // (image len, data len) per block
    let (mut last_spc, mut last_db, mut last_rel) = (0, 0, 0);
    // As DecodeXLogRecord: headers continue while more bytes remain than the payloads
    // announced so far (block images and data, then main data) will take.
    let mut datatotal = 0usize;
    while end.saturating_sub(pos) > datatotal {
        let id = r.u8(pos)?;
        match id {
            XLR_BLOCK_ID_DATA_SHORT => {
                main_len = r.u8(pos + 1)? as usize;
                pos += 2;
                break;
            }
            XLR_BLOCK_ID_DATA_LONG => {
                main_len = r.u32(pos + 1)? as usize;
                pos += 5;
                break;
            }
            XLR_BLOCK_ID_ORIGIN => {
                origin = Some(r.u16(pos + 1)?);
                pos += 3;
            }
            XLR_BLOCK_ID_TOPLEVEL_XID if major.number() >= 14 => {
                toplevel_xid = Some(r.u32(pos + 1)?);
                pos += 5;
            }
            id if id <= XLR_MAX_BLOCK_ID => {
                let fork_flags = r.u8(pos + 1)?;
                let data_len = r.u16(pos + 2)? as usize;
                pos += 4;
                let has_image = fork_flags & BKPBLOCK_HAS_IMAGE != 0;
                let has_data = fork_flags & BKPBLOCK_HAS_DATA != 0;
                if has_data != (data_len > 0) {
                    return Err(FormatError::bad(
                        "WAL record",
                        pos - 2,
                        "BKPBLOCK_HAS_DATA to match data_length",
                        format!("flags {fork_flags:#x}, length {data_len}"),
                    ));
                }
                let mut image_len = 0;
                let mut image_info = None;
                if has_image {
                    image_len = r.u16(pos)? as usize;
                    let hole_offset = r.u16(pos + 2)?;
                    let bimg_info = r.u8(pos + 4)?;
                    pos += 5;
                    let compression = super::image::compression(major, bimg_info);
                    let has_hole = bimg_info & BKPIMAGE_HAS_HOLE != 0;
                    // The hole's length: stored when compressed, else what the image lacks.
                    let hole_length = if has_hole && compression.is_some() {
                        let l = r.u16(pos)?;
                        pos += 2; // XLogRecordBlockCompressHeader.hole_length
                        Some(l)
                    } else {
                        None
                    };
                    image_info = Some(super::image::ImageInfo {
                        hole_offset: if has_hole { hole_offset } else { 0 },
                        hole_length,
                        has_hole,
                        apply: super::image::applies(major, bimg_info),
                        compression,
                    });
                }
                if fork_flags & BKPBLOCK_SAME_REL == 0 {
                    last_spc = r.u32(pos)?;
                    last_db = r.u32(pos + 4)?;
                    last_rel = r.u32(pos + 8)?;
                    pos += 12;
                } else if blocks.is_empty() {
                    return Err(FormatError::bad("WAL record", pos, "a relation before BKPBLOCK_SAME_REL", "BKPBLOCK_SAME_REL on the first block"));
                }
                let block = r.u32(pos)?;
                pos += 4;
                blocks.push(BlockRef {
                    id,
                    fork: fork_flags & 0x0F,
                    has_image,
                    has_data,
                    image_info,
                    spc_node: last_spc,
                    db_node: last_db,
                    rel_node: last_rel,
                    block,
                    image: None,
                    data: None,
                });
                payload_lens.push((image_len, data_len));
                datatotal += image_len + data_len;
            }
            other => return Err(FormatError::bad("WAL record", pos, "a block id", format!("invalid block_id {other}"))),
        }
    }
    // Payloads follow the headers: per block image then data, then the main data.
    for (b, (il, dl)) in blocks.iter_mut().zip(payload_lens) {
        if il > 0 {
            r.need(pos, il)?;
            b.image = Some((pos, il));
            pos += il;
        }
        if dl > 0 {
            r.need(pos, dl)?;
            b.data = Some((pos, dl));
            pos += dl;
        }
    }
    r.need(pos, main_len)?;
    if pos + main_len != end {
        return Err(FormatError::bad(
            "WAL record",
            pos,
            format!("record to end after {main_len} bytes of main data"),
            format!("{} bytes left", end as i64 - pos as i64),
        ));
    }
    Ok(DecodedRecord { lsn, header, blocks, main_data: pos..pos + main_len, origin, toplevel_xid, bytes })
}

/// The CheckPoint carried by a checkpoint record.
pub fn decode_checkpoint(major: PgMajor, rec: &DecodedRecord) -> Result<CheckPoint, FormatError> {
    if !rec.is_checkpoint() {
        return Err(FormatError::bad(
            "checkpoint record",
            16,
            "rmgr XLOG with info CHECKPOINT_SHUTDOWN or CHECKPOINT_ONLINE",
            format!("rmid {} info {:#04x}", rec.header.rmid, rec.header.info),
        ));
    }
    CheckPoint::decode(major, rec.main_data()).map_err(|e| e.shifted(rec.main_data.start))
}
