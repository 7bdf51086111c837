//! Write-ahead log: segment names, page headers, records (across pages and segments),
//! checkpoint records. Headers: `src/include/access/xlog_internal.h`, `access/xlogrecord.h`,
//! `access/xlogreader.h`; reading logic after `src/backend/access/transam/xlogreader.c`.
//!
//! ```text
//! segment  := page[seg_size / XLOG_BLCKSZ]
//! page     := (XLogLongPageHeaderData if first page of segment | XLogPageHeaderData) data
//! XLogPageHeaderData (24) := xlp_magic:u16 xlp_info:u16 xlp_tli:u32 xlp_pageaddr:u64 xlp_rem_len:u32 pad:u32
//! XLogLongPageHeaderData (40) := XLogPageHeaderData xlp_sysid:u64 xlp_seg_size:u32 xlp_xlog_blcksz:u32
//! record   := XLogRecord(24) block-headers main-data-header block-payloads main-data, MAXALIGNed
//! XLogRecord := xl_tot_len:u32 xl_xid:u32 xl_prev:u64 xl_info:u8 xl_rmid:u8 pad:u16 xl_crc:u32
//! ```
//! The page header is unchanged 10–18; only XLOG_PAGE_MAGIC changes per major.

pub mod build;
pub mod image;
pub mod page;
pub mod reader;
pub mod record;
pub mod runs;
pub mod segment;
pub mod xact;

pub use page::{WalPageHeader, XLP_FIRST_IS_CONTRECORD, XLP_LONG_HEADER};
pub use reader::{PageFetch, WalError, WalReader, WalSource};
pub use record::{decode_checkpoint, DecodedRecord, RecordHeader};
pub use segment::{SegNo, WalGeometry};
