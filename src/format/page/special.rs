//! The pages of an index or a sequence as their access method writes them: the special
//! space's size and page id, the metapage's magic and version, every other page's page id
//! or type, flags and links, and a btree's sibling links against each other. Layouts:
//! `access/nbtree.h` (BTPageOpaqueData, BTMetaPageData), `access/hash.h`,
//! `access/gist.h`, `access/gin_private.h` (GinMetaPageData), `access/brin_page.h`,
//! `access/spgist_private.h`, `commands/sequence.c` (sequence_magic). The same 10–18 but for
//! the btree and hash versions, which are accepted in their supported ranges. Pure: bytes in,
//! a problem (in words) out.
//!
//! ```text
//! btree  special 16: btpo_prev btpo_next btpo_level:u32 btpo_flags:u16 btpo_cycleid:u16
//!        block 0 flags BTP_META (8); at 24: btm_magic 0x053162, btm_version 2..=4,
//!        btm_root:u32, btm_level, btm_fastroot:u32 (blocks of the index)
//! hash   special 16: ... hasho_flag:u16 hasho_page_id:u16 = 0xFF80; block 0 flag LH_META_PAGE
//!        (8); at 24: hashm_magic 0x06440640, hashm_version 2..=4
//! GiST   special 16: nsn:u64 rightlink:u32 flags:u16 gist_page_id:u16 = 0xFF81 (block 0 is root)
//! GIN    special 8: rightlink:u32 maxoff:u16 flags:u16; block 0 flags GIN_META (8); at 24:
//!        head tail tailFreeSize nPendingPages:u32 nPendingHeapTuples:i64 nTotalPages
//!        nEntryPages nDataPages:u32 nEntries:i64 ginVersion:i32 (at 24 + 48) in 1..=2; no
//!        magic, so the pending list is checked: head and tail both invalid (0xFFFFFFFF) with
//!        no pending pages, or both blocks of the index
//! BRIN   special 8: the last u16 is the page type, 0xF091 (meta) on block 0; at 24:
//!        brinMagic 0xA8109CFA, brinVersion 1
//! SP-GiST special 8: flags:u16 nRedirection:u16 nPlaceholder:u16 spgist_page_id:u16 = 0xFF82;
//!        block 0 flags SPGIST_META (1); at 24: magicNumber 0xBA0BABEE
//! sequence special 8 (MAXALIGN of u32): sequence_magic 0x1717
//! ```

/// pg_am oids, fixed since the access methods are built in.
pub const BTREE_AM: u32 = 403;
pub const HASH_AM: u32 = 405;
pub const GIST_AM: u32 = 783;
pub const GIN_AM: u32 = 2742;
pub const SPGIST_AM: u32 = 4000;
pub const BRIN_AM: u32 = 3580;

/// The access method's name, for messages.
pub fn am_name(am: u32) -> Option<&'static str> {
    Some(match am {
        BTREE_AM => "btree",
        HASH_AM => "hash",
        GIST_AM => "GiST",
        GIN_AM => "GIN",
        SPGIST_AM => "SP-GiST",
        BRIN_AM => "BRIN",
        _ => return None,
    })
}

/// InvalidBlockNumber.
const INVALID: u32 = 0xFFFF_FFFF;

fn u16_at(p: &[u8], o: usize) -> u16 {
    p.get(o..o + 2).map(|b| u16::from_le_bytes([b[0], b[1]])).unwrap_or(0)
}

fn u32_at(p: &[u8], o: usize) -> u32 {
    p.get(o..o + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).unwrap_or(0)
}

/// What is wrong with block 0 of an index of access method `am` (None: nothing, or an access
/// method this does not know). `page` is one block whose page header the server accepts;
/// `nblocks` the index's length in blocks.
pub fn index_first_page_problem(am: u32, page: &[u8], nblocks: u32) -> Option<String> {
    let bs = page.len();
    let special = u16_at(page, 16) as usize;
    let (size, name) = match am {
        BTREE_AM | HASH_AM | GIST_AM => (16, am_name(am)?),
        GIN_AM | SPGIST_AM | BRIN_AM => (8, am_name(am)?),
        _ => return None,
    };
    if special + size != bs {
        return Some(format!("its special space is {} bytes (pd_special {special}), not a {name} page's {size}", bs.saturating_sub(special)));
    }
    let sp = &page[special..];
    let want = |what: &str, found: u32, expected: u32| (found != expected).then(|| format!("{what} is {found:#x}, not {expected:#x}"));
    let range = |what: &str, found: u32, lo: u32, hi: u32| (found < lo || found > hi).then(|| format!("{what} is {found}, not {lo}..{hi}"));
    let block = |what: &str, b: u32| (b != 0 && b >= nblocks).then(|| format!("{what} is block {b}, past the index's {nblocks} blocks"));
    let meta = |flags: u16, bit: u16| (flags & bit == 0).then(|| format!("the first page is not marked as the {name} metapage (flags {flags:#x})"));
    match am {
        BTREE_AM => meta(u16_at(sp, 12), 8)
            .or_else(|| want("btm_magic", u32_at(page, 24), 0x053162))
            .or_else(|| range("btm_version", u32_at(page, 28), 2, 4))
            .or_else(|| block("btm_root", u32_at(page, 32)))
            .or_else(|| block("btm_fastroot", u32_at(page, 40))),
        HASH_AM => want("hasho_page_id", u16_at(sp, 14) as u32, 0xFF80)
            .or_else(|| meta(u16_at(sp, 12), 8))
            .or_else(|| want("hashm_magic", u32_at(page, 24), 0x06440640))
            .or_else(|| range("hashm_version", u32_at(page, 28), 2, 4)),
        GIST_AM => want("gist_page_id", u16_at(sp, 14) as u32, 0xFF81),
        GIN_AM => meta(u16_at(sp, 6), 8).or_else(|| range("ginVersion", u32_at(page, 72), 1, 2)).or_else(|| {
            let (head, tail, pending) = (u32_at(page, 24), u32_at(page, 28), u32_at(page, 36));
            match (head, tail) {
                (INVALID, INVALID) if pending == 0 => None,
                (INVALID, INVALID) => Some(format!("the pending list is empty but nPendingPages is {pending}")),
                _ if head < nblocks && tail < nblocks && pending < nblocks => None,
                _ => Some(format!("the pending list (head {head}, tail {tail}, {pending} pages) is not inside the index's {nblocks} blocks")),
            }
        }),
        BRIN_AM => want("the page type", u16_at(sp, 6) as u32, 0xF091)
            .or_else(|| want("brinMagic", u32_at(page, 24), 0xA8109CFA))
            .or_else(|| range("brinVersion", u32_at(page, 28), 1, 1)),
        SPGIST_AM => want("spgist_page_id", u16_at(sp, 6) as u32, 0xFF82)
            .or_else(|| meta(u16_at(sp, 0), 1))
            .or_else(|| want("magicNumber", u32_at(page, 24), 0xBA0BABEE)),
        _ => None,
    }
}

/// A btree page's sibling links, for checking them against each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BtreeLinks {
    pub block: u32,
    pub prev: u32,
    pub next: u32,
    pub level: u32,
    pub flags: u16,
}

/// btpo_flags: BTP_LEAF, BTP_ROOT, BTP_DELETED, BTP_META, BTP_HALF_DEAD, BTP_SPLIT_END,
/// BTP_HAS_GARBAGE, BTP_INCOMPLETE_SPLIT, BTP_HAS_FULLXID (14+).
const BTP_VALID: u16 = 0x01FF;
const BTP_LEAF: u16 = 0x0001;
const BTP_DELETED: u16 = 0x0004;
const BTP_META: u16 = 0x0008;

/// What is wrong with a page past the first of an index (None: nothing, or an access method
/// this does not know): its special space's size, page id or page type, flags no server
/// sets, links past the index. `page` is one block whose header the server accepts and that
/// is not all zero. For a btree, its links are returned for [`btree_sibling_problem`].
pub fn index_page_problem(am: u32, page: &[u8], block: u32, nblocks: u32) -> (Option<String>, Option<BtreeLinks>) {
    let bs = page.len();
    let special = u16_at(page, 16) as usize;
    let (size, name) = match am {
        BTREE_AM | HASH_AM | GIST_AM => (16, am_name(am).unwrap_or("")),
        GIN_AM | SPGIST_AM | BRIN_AM => (8, am_name(am).unwrap_or("")),
        _ => return (None, None),
    };
    if special + size != bs {
        return (Some(format!("its special space is {} bytes (pd_special {special}), not a {name} page's {size}", bs.saturating_sub(special))), None);
    }
    let sp = &page[special..];
    let want = |what: &str, found: u16, expected: u16| (found != expected).then(|| format!("{what} is {found:#x}, not {expected:#x}"));
    let flags_ok = |flags: u16, valid: u16| (flags & !valid != 0).then(|| format!("its flags {flags:#x} hold bits no {name} page has"));
    let link = |what: &str, b: u32| (b != INVALID && b >= nblocks).then(|| format!("{what} is block {b}, past the index's {nblocks} blocks"));
    match am {
        BTREE_AM => {
            let l = BtreeLinks { block, prev: u32_at(sp, 0), next: u32_at(sp, 4), level: u32_at(sp, 8), flags: u16_at(sp, 12) };
            let p = flags_ok(l.flags, BTP_VALID)
                .or_else(|| (l.flags & BTP_META != 0).then(|| "it is marked as a metapage, which only block 0 is".to_string()))
                .or_else(|| (l.prev >= nblocks).then(|| format!("btpo_prev is block {}, past the index's {nblocks} blocks", l.prev)))
                .or_else(|| (l.next >= nblocks).then(|| format!("btpo_next is block {}, past the index's {nblocks} blocks", l.next)))
                .or_else(|| {
                    // Before 14 a deleted page's level field holds an xid.
                    let live = l.flags & BTP_DELETED == 0;
                    (live && (l.flags & BTP_LEAF != 0) != (l.level == 0))
                        .then(|| format!("it is {} yet at level {}", if l.flags & BTP_LEAF != 0 { "a leaf" } else { "an internal page" }, l.level))
                });
            (p, Some(l))
        }
        HASH_AM => (
            want("hasho_page_id", u16_at(sp, 14), 0xFF80)
                .or_else(|| flags_ok(u16_at(sp, 12), 0x00FF))
                .or_else(|| (u16_at(sp, 12) & 0x0008 != 0).then(|| "it is marked as the metapage, which only block 0 is".to_string()))
                .or_else(|| link("hasho_nextblkno", u32_at(sp, 4))),
            None,
        ),
        GIST_AM => {
            (want("gist_page_id", u16_at(sp, 14), 0xFF81).or_else(|| flags_ok(u16_at(sp, 12), 0x001F)).or_else(|| link("rightlink", u32_at(sp, 8))), None)
        }
        GIN_AM => (
            flags_ok(u16_at(sp, 6), 0x00FF)
                .or_else(|| (u16_at(sp, 6) & 0x0008 != 0).then(|| "it is marked as the metapage, which only block 0 is".to_string()))
                .or_else(|| link("rightlink", u32_at(sp, 0))),
            None,
        ),
        BRIN_AM => {
            let t = u16_at(sp, 6);
            ((!matches!(t, 0xF092 | 0xF093)).then(|| format!("the page type is {t:#x}, not a revmap (0xf092) or regular (0xf093) page")), None)
        }
        SPGIST_AM => (
            want("spgist_page_id", u16_at(sp, 6), 0xFF82)
                .or_else(|| flags_ok(u16_at(sp, 0), 0x000F))
                .or_else(|| (u16_at(sp, 0) & 0x0001 != 0).then(|| "it is marked as the metapage, which only block 0 is".to_string())),
            None,
        ),
        _ => (None, None),
    }
}

/// The btree's sibling links against each other (bt_index_check's "left link/right link
/// pair ... not in agreement"): a live page's right sibling must be live, on the same
/// level, and point back to it. Deleted pages keep stale links and are not followed.
/// The first offending page: (block, problem).
pub fn btree_sibling_problem(pages: &[BtreeLinks]) -> Option<(u32, String)> {
    let by_block: std::collections::HashMap<u32, &BtreeLinks> = pages.iter().map(|p| (p.block, p)).collect();
    for p in pages.iter().filter(|p| p.flags & BTP_DELETED == 0 && p.next != 0) {
        let Some(n) = by_block.get(&p.next) else { continue };
        if n.flags & BTP_DELETED != 0 {
            return Some((p.block, format!("its right sibling, block {}, is a deleted page", p.next)));
        }
        if n.prev != p.block {
            return Some((p.block, format!("its right sibling, block {}, links back to block {}, not to it", p.next, n.prev)));
        }
        if n.level != p.level {
            return Some((p.block, format!("its right sibling, block {}, is at level {}, it at level {}", p.next, n.level, p.level)));
        }
    }
    None
}

/// What is wrong with a sequence's page (None: nothing).
pub fn sequence_page_problem(page: &[u8]) -> Option<String> {
    let special = u16_at(page, 16) as usize;
    if special + 8 != page.len() {
        return Some(format!("its special space is {} bytes (pd_special {special}), not a sequence page's 8", page.len().saturating_sub(special)));
    }
    let magic = u32_at(page, special);
    (magic != 0x1717).then(|| format!("sequence_magic is {magic:#x}, not 0x1717 (\"bad magic number in sequence\")"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn page(special: usize) -> Vec<u8> {
        let mut p = vec![0u8; 8192];
        p[16..18].copy_from_slice(&((8192 - special) as u16).to_le_bytes());
        p
    }

    #[test]
    fn btree_metapage() {
        let mut p = page(16);
        p[8192 - 16 + 12] = 8;
        p[24..28].copy_from_slice(&0x053162u32.to_le_bytes());
        p[28..32].copy_from_slice(&4u32.to_le_bytes());
        assert_eq!(index_first_page_problem(BTREE_AM, &p, 1), None);
        p[25] ^= 0xFF;
        assert!(index_first_page_problem(BTREE_AM, &p, 1).unwrap().contains("btm_magic"));
        assert!(index_first_page_problem(GIN_AM, &p, 1).unwrap().contains("special space"));
        assert_eq!(index_first_page_problem(12345, &p, 1), None);
    }

    #[test]
    fn later_pages_and_btree_siblings() {
        let mut p = page(16);
        // A btree leaf at level 0 with siblings 1 and 3 of 4 blocks.
        p[8176..8180].copy_from_slice(&1u32.to_le_bytes());
        p[8180..8184].copy_from_slice(&3u32.to_le_bytes());
        p[8188] = 1;
        let (problem, links) = index_page_problem(BTREE_AM, &p, 2, 4);
        assert_eq!(problem, None);
        let l = links.unwrap();
        assert_eq!((l.prev, l.next, l.level), (1, 3, 0));
        p[8180..8184].copy_from_slice(&9u32.to_le_bytes());
        assert!(index_page_problem(BTREE_AM, &p, 2, 4).0.unwrap().contains("btpo_next is block 9"));
        p[8188] = 0; // internal at level 0
        p[8180..8184].copy_from_slice(&3u32.to_le_bytes());
        assert!(index_page_problem(BTREE_AM, &p, 2, 4).0.unwrap().contains("an internal page"));
        let link = |block, prev, next, flags| BtreeLinks { block, prev, next, level: 0, flags };
        assert_eq!(btree_sibling_problem(&[link(1, 0, 2, 1), link(2, 1, 0, 1)]), None);
        assert!(btree_sibling_problem(&[link(1, 0, 2, 1), link(2, 3, 0, 1)]).unwrap().1.contains("links back to block 3"));
        // Deleted pages keep stale links: not followed.
        assert_eq!(btree_sibling_problem(&[link(1, 0, 2, 4), link(2, 3, 0, 1)]), None);
        // Other access methods: page ids and types.
        let mut h = page(16);
        h[8190..8192].copy_from_slice(&0xFF80u16.to_le_bytes());
        h[8180..8184].copy_from_slice(&INVALID.to_le_bytes());
        assert_eq!(index_page_problem(HASH_AM, &h, 1, 4).0, None);
        h[8191] = 0;
        assert!(index_page_problem(HASH_AM, &h, 1, 4).0.unwrap().contains("hasho_page_id"));
        let mut b = page(8);
        b[8190..8192].copy_from_slice(&0xF093u16.to_le_bytes());
        assert_eq!(index_page_problem(BRIN_AM, &b, 2, 3).0, None);
        b[8190..8192].copy_from_slice(&0xF091u16.to_le_bytes());
        assert!(index_page_problem(BRIN_AM, &b, 2, 3).0.unwrap().contains("page type"));
    }

    #[test]
    fn sequence_magic() {
        let mut p = page(8);
        p[8184..8188].copy_from_slice(&0x1717u32.to_le_bytes());
        assert_eq!(sequence_page_problem(&p), None);
        p[8184] = 0;
        assert!(sequence_page_problem(&p).unwrap().contains("0x1717"));
    }
}
