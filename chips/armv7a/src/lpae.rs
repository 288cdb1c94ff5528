// SPDX-License-Identifier: MIT OR Apache-2.0
//! Long-descriptor (LPAE) translation tables: the engine both stages share.
//!
//! Capvisor's Hyp stage-1 tables ([`crate::hyp_tables`]) and each VM's
//! stage-2 tables ([`crate::stage2`]) have the same shape: a 32-bit input
//! range (HTCR.T0SZ = 0, or VTCR.T0SZ = 0 with SL0 = 1), a level-1 table of 4
//! entries (1 GiB each, input bits 31:30), level-2 tables of 512 entries
//! (2 MiB each, bits 29:21) and level-3 tables of 512 entries (4 KiB pages,
//! bits 20:12). They differ only in the attribute bits of block and page
//! descriptors, which the caller supplies.
//!
//! [`TranslationTables::map_range`] maps an input range onto an output range
//! with the largest descriptors that fit: a block where the input address is
//! aligned to the block size, the block fits in the range, and the output
//! address is equally aligned; otherwise the next level down. All tables are
//! inside the structure (no allocation), so it can live in a `static`.
//! Before writing anything the engine counts the new tables a mapping needs
//! and refuses it whole when the pool is short, so a refused mapping changes
//! nothing.
//!
//! Descriptor type bits (1:0): 0b01 block (levels 1, 2), 0b11 table (levels
//! 1, 2) or page (level 3); anything else is invalid (0b01 at level 3 is
//! reserved and treated as invalid). Output and table addresses occupy bits
//! 39:12.

use hyp::memory::PAGE_SIZE;

pub(crate) const ENTRIES: usize = 512;
pub(crate) const GIB: u64 = 1 << 30;
pub(crate) const MIB2: u64 = 1 << 21;
pub(crate) const PAGE: u64 = PAGE_SIZE as u64;
/// Output-address field, bits 39:12.
pub(crate) const ADDRESS_MASK: u64 = 0x0000_00ff_ffff_f000;

pub(crate) const TYPE_MASK: u64 = 0b11;
pub(crate) const TYPE_BLOCK: u64 = 0b01;
pub(crate) const TYPE_TABLE_OR_PAGE: u64 = 0b11;

/// Leaf attribute bits with the same place in both stages' descriptors.
/// SH (bits 9:8): inner shareable, for Normal memory.
pub(crate) const SH_INNER: u64 = 0b11 << 8;
/// SH: outer shareable, for Device memory (which ignores it).
pub(crate) const SH_OUTER: u64 = 0b10 << 8;
/// AF (bit 10): set, so no access-flag faults.
pub(crate) const ACCESS_FLAG: u64 = 1 << 10;
/// XN (bit 54): execute-never.
pub(crate) const EXECUTE_NEVER: u64 = 1 << 54;

/// One 4 KiB-aligned translation table of 512 descriptors.
#[repr(C, align(4096))]
#[derive(Clone, Debug)]
pub struct Table {
    pub(crate) entries: [u64; ENTRIES],
}

impl Table {
    const fn empty() -> Table {
        Table {
            entries: [0; ENTRIES],
        }
    }

    /// The table's address as it goes into a descriptor. On the 32-bit
    /// target this is the physical address (the hypervisor is identity
    /// mapped); on the 64-bit host the mask keeps it inside the descriptor's
    /// address field.
    pub(crate) fn address(&self) -> u64 {
        (self as *const Table as usize as u64) & ADDRESS_MASK
    }
}

/// How many descriptors of each size a set of tables holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MappingStats {
    /// 1 GiB level-1 blocks.
    pub gib_blocks: usize,
    /// 2 MiB level-2 blocks.
    pub mib2_blocks: usize,
    /// 4 KiB level-3 pages.
    pub pages: usize,
}

/// What one input address translates through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Lookup {
    /// No valid descriptor; the invalid entry spans `size` bytes.
    Invalid { size: u64 },
    /// A block or page descriptor spanning `size` bytes.
    Leaf { descriptor: u64, size: u64 },
    /// A table descriptor pointing at none of the engine's tables.
    StrayTable { address: u64, size: u64 },
}

impl Lookup {
    /// How many bytes of input the deciding descriptor spans.
    pub(crate) const fn size(&self) -> u64 {
        match *self {
            Lookup::Invalid { size }
            | Lookup::Leaf { size, .. }
            | Lookup::StrayTable { size, .. } => size,
        }
    }
}

/// The pool of tables is too small for a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfTables;

/// Translation tables with room for `L2_TABLES` level-2 and `L3_TABLES`
/// level-3 tables.
#[derive(Debug)]
pub struct TranslationTables<const L2_TABLES: usize, const L3_TABLES: usize> {
    /// Level 1: only the first 4 entries are used; a whole page keeps the
    /// alignment (32 bytes required) simple.
    pub(crate) level1: Table,
    pub(crate) level2: [Table; L2_TABLES],
    pub(crate) level3: [Table; L3_TABLES],
    pub(crate) level2_used: usize,
    pub(crate) level3_used: usize,
}

impl<const L2_TABLES: usize, const L3_TABLES: usize> TranslationTables<L2_TABLES, L3_TABLES> {
    /// Empty tables: nothing mapped.
    pub const fn new() -> Self {
        TranslationTables {
            level1: Table::empty(),
            level2: [const { Table::empty() }; L2_TABLES],
            level3: [const { Table::empty() }; L3_TABLES],
            level2_used: 0,
            level3_used: 0,
        }
    }

    /// The level-1 table's address (for HTTBR or VTTBR).
    pub fn root_table_address(&self) -> u64 {
        &self.level1 as *const Table as usize as u64
    }

    /// How many level-2 and level-3 tables are in use.
    pub fn tables_used(&self) -> (usize, usize) {
        (self.level2_used, self.level3_used)
    }

    /// Counts the valid block and page descriptors.
    pub fn mapping_stats(&self) -> MappingStats {
        let leaves = |table: &Table, leaf_type: u64| {
            table
                .entries
                .iter()
                .filter(|&&descriptor| descriptor & TYPE_MASK == leaf_type)
                .count()
        };
        MappingStats {
            gib_blocks: leaves(&self.level1, TYPE_BLOCK),
            mib2_blocks: self.level2[..self.level2_used]
                .iter()
                .map(|table| leaves(table, TYPE_BLOCK))
                .sum(),
            pages: self.level3[..self.level3_used]
                .iter()
                .map(|table| leaves(table, TYPE_TABLE_OR_PAGE))
                .sum(),
        }
    }

    /// Maps input `[start, end)` onto output `output..`, every leaf with
    /// `attributes` (the bits other than address and type). All three must
    /// be page aligned, `end` at most 4 GiB, and the input range must not
    /// overlap anything mapped before (the caller checks; tables are only
    /// ever made for mapped ranges, which the table count relies on).
    pub fn map_range(
        &mut self,
        start: u64,
        end: u64,
        output: u64,
        attributes: u64,
    ) -> Result<(), OutOfTables> {
        let (level2, level3) = self.tables_needed(start, end, output);
        if self.level2_used + level2 > L2_TABLES || self.level3_used + level3 > L3_TABLES {
            return Err(OutOfTables);
        }
        self.write_range(start, end, output, attributes);
        Ok(())
    }

    /// Whether `[address, address + size)` can be one block: aligned, within
    /// the range, and with its output equally aligned.
    fn block_fits(address: u64, end: u64, output: u64, start: u64, size: u64) -> bool {
        address.is_multiple_of(size)
            && end - address >= size
            && (output + (address - start)).is_multiple_of(size)
    }

    /// How many new level-2 and level-3 tables mapping the range takes,
    /// following exactly the choices [`Self::write_range`] makes.
    fn tables_needed(&self, start: u64, end: u64, output: u64) -> (usize, usize) {
        let mut level2 = 0;
        let mut level3 = 0;
        let mut gib_base = start & !(GIB - 1);
        while gib_base < end {
            let gib_slot = (gib_base / GIB) as usize;
            let from = gib_base.max(start);
            let to = (gib_base + GIB).min(end);
            let level1_free = self.level1.entries[gib_slot] & TYPE_MASK == 0;
            if level1_free && Self::block_fits(from, end, output, start, GIB) {
                gib_base += GIB;
                continue;
            }
            let level2_table = self.level2_index(self.level1.entries[gib_slot]);
            if level2_table.is_none() {
                level2 += 1;
            }
            let mut mib2_base = from & !(MIB2 - 1);
            while mib2_base < to {
                let slot = ((mib2_base >> 21) & 511) as usize;
                let entry = level2_table.map_or(0, |t| self.level2[t].entries[slot]);
                let piece = mib2_base.max(from);
                let block =
                    entry & TYPE_MASK == 0 && Self::block_fits(piece, end, output, start, MIB2);
                if !block && self.level3_index(entry).is_none() {
                    level3 += 1;
                }
                mib2_base += MIB2;
            }
            gib_base += GIB;
        }
        (level2, level3)
    }

    /// Writes the descriptors for an already counted range.
    fn write_range(&mut self, start: u64, end: u64, output: u64, attributes: u64) {
        let mut address = start;
        while address < end {
            let out = output + (address - start);
            let gib_slot = (address / GIB) as usize;
            if self.level1.entries[gib_slot] & TYPE_MASK == 0
                && Self::block_fits(address, end, output, start, GIB)
            {
                self.level1.entries[gib_slot] = out | attributes | TYPE_BLOCK;
                address += GIB;
                continue;
            }
            let level2 = self.level2_table_for(gib_slot);
            let mib2_slot = ((address >> 21) & 511) as usize;
            if self.level2[level2].entries[mib2_slot] & TYPE_MASK == 0
                && Self::block_fits(address, end, output, start, MIB2)
            {
                self.level2[level2].entries[mib2_slot] = out | attributes | TYPE_BLOCK;
                address += MIB2;
                continue;
            }
            let level3 = self.level3_table_for(level2, mib2_slot);
            let page_slot = ((address >> 12) & 511) as usize;
            self.level3[level3].entries[page_slot] = out | attributes | TYPE_TABLE_OR_PAGE;
            address += PAGE;
        }
    }

    /// The level-2 table under level-1 slot `slot`, made if absent.
    fn level2_table_for(&mut self, slot: usize) -> usize {
        if let Some(index) = self.level2_index(self.level1.entries[slot]) {
            return index;
        }
        // `map_range` counted the tables it needs before writing anything.
        assert!(
            self.level2_used < L2_TABLES,
            "level-2 table pool miscounted"
        );
        let index = self.level2_used;
        self.level2_used += 1;
        self.level1.entries[slot] = self.level2[index].address() | TYPE_TABLE_OR_PAGE;
        index
    }

    /// The level-3 table under entry `slot` of level-2 table `level2`.
    fn level3_table_for(&mut self, level2: usize, slot: usize) -> usize {
        if let Some(index) = self.level3_index(self.level2[level2].entries[slot]) {
            return index;
        }
        assert!(
            self.level3_used < L3_TABLES,
            "level-3 table pool miscounted"
        );
        let index = self.level3_used;
        self.level3_used += 1;
        self.level2[level2].entries[slot] = self.level3[index].address() | TYPE_TABLE_OR_PAGE;
        index
    }

    /// Which level-2 table a table descriptor points at.
    pub(crate) fn level2_index(&self, descriptor: u64) -> Option<usize> {
        table_pointed_at(&self.level2[..self.level2_used], descriptor)
    }

    /// Which level-3 table a table descriptor points at.
    pub(crate) fn level3_index(&self, descriptor: u64) -> Option<usize> {
        table_pointed_at(&self.level3[..self.level3_used], descriptor)
    }

    /// The level-2 block descriptor that maps `address`, if a 2 MiB block
    /// does (for a run-time switch of that block: `crate::stage2`).
    pub(crate) fn block_descriptor(&mut self, address: u64) -> Option<&mut u64> {
        let level1 = self.level1.entries[(address / GIB) as usize];
        let table = self.level2_index(level1)?;
        let entry = &mut self.level2[table].entries[((address >> 21) & 511) as usize];
        (*entry & TYPE_MASK == TYPE_BLOCK).then_some(entry)
    }

    /// Walks the tables for `address` as the MMU would.
    pub(crate) fn lookup(&self, address: u64) -> Lookup {
        let level1 = self.level1.entries[(address / GIB) as usize];
        match level1 & TYPE_MASK {
            TYPE_BLOCK => {
                return Lookup::Leaf {
                    descriptor: level1,
                    size: GIB,
                }
            }
            TYPE_TABLE_OR_PAGE => {}
            _ => return Lookup::Invalid { size: GIB },
        }
        let Some(level2) = self.level2_index(level1) else {
            return Lookup::StrayTable {
                address: level1 & ADDRESS_MASK,
                size: GIB,
            };
        };
        let descriptor = self.level2[level2].entries[((address >> 21) & 511) as usize];
        match descriptor & TYPE_MASK {
            TYPE_BLOCK => {
                return Lookup::Leaf {
                    descriptor,
                    size: MIB2,
                }
            }
            TYPE_TABLE_OR_PAGE => {}
            _ => return Lookup::Invalid { size: MIB2 },
        }
        let Some(level3) = self.level3_index(descriptor) else {
            return Lookup::StrayTable {
                address: descriptor & ADDRESS_MASK,
                size: MIB2,
            };
        };
        let page = self.level3[level3].entries[((address >> 12) & 511) as usize];
        if page & TYPE_MASK == TYPE_TABLE_OR_PAGE {
            Lookup::Leaf {
                descriptor: page,
                size: PAGE,
            }
        } else {
            // 0b01 at level 3 is reserved: the MMU treats it as invalid.
            Lookup::Invalid { size: PAGE }
        }
    }

    /// The output address `address` translates to, with the leaf descriptor,
    /// or `None` when it is not mapped.
    pub(crate) fn translate(&self, address: u64) -> Option<(u64, u64)> {
        match self.lookup(address) {
            Lookup::Leaf { descriptor, size } => {
                let base = descriptor & ADDRESS_MASK & !(size - 1);
                Some((base + (address & (size - 1)), descriptor))
            }
            _ => None,
        }
    }
}

impl<const L2_TABLES: usize, const L3_TABLES: usize> Default
    for TranslationTables<L2_TABLES, L3_TABLES>
{
    fn default() -> Self {
        Self::new()
    }
}

/// Which of `tables` a table descriptor points at, if any.
fn table_pointed_at(tables: &[Table], descriptor: u64) -> Option<usize> {
    if descriptor & TYPE_MASK != TYPE_TABLE_OR_PAGE {
        return None;
    }
    tables
        .iter()
        .position(|table| table.address() == descriptor & ADDRESS_MASK)
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;

    type Tables = TranslationTables<4, 16>;

    #[test]
    fn offset_mapping_uses_blocks_only_where_output_is_aligned() {
        let mut t: Box<Tables> = Box::default();
        // 128 MiB of IPA at 1 GiB onto PA 0x8800_0000: 2 MiB blocks, no 1 GiB.
        t.map_range(0x4000_0000, 0x4800_0000, 0x8800_0000, 0)
            .unwrap();
        assert_eq!(t.tables_used(), (1, 0));
        assert_eq!(t.mapping_stats().mib2_blocks, 64);
        assert_eq!(t.translate(0x4012_3456).unwrap().0, 0x8812_3456);
        assert_eq!(t.translate(0x4800_0000), None);
    }

    #[test]
    fn misaligned_output_falls_back_to_pages() {
        let mut t: Box<Tables> = Box::default();
        // Output offset by one page: every 2 MiB piece needs pages.
        t.map_range(0x20_0000, 0x60_0000, 0x8000_1000, 0).unwrap();
        assert_eq!(t.tables_used(), (1, 2));
        assert_eq!(
            t.mapping_stats(),
            MappingStats {
                gib_blocks: 0,
                mib2_blocks: 0,
                pages: 1024
            }
        );
        assert_eq!(t.translate(0x5f_fffc).unwrap().0, 0x8040_0ffc);
    }

    #[test]
    fn counts_match_what_is_written() {
        // Every combination of a few starts, lengths and offsets: the count
        // done before writing equals the tables the write takes.
        for start in [0u64, 0x1000, 0x1f_f000, 0x20_0000, 0x3fe0_0000] {
            for length in [0x1000u64, 0x20_0000, 0x40_1000, 0x4000_0000] {
                for output in [start, start + 0x1000, 0x8000_0000] {
                    if start + length > 1 << 32 {
                        continue;
                    }
                    let mut t: Box<TranslationTables<4, 600>> = Box::default();
                    let needed = t.tables_needed(start, start + length, output);
                    t.map_range(start, start + length, output, 0).unwrap();
                    assert_eq!(
                        t.tables_used(),
                        needed,
                        "{start:#x}+{length:#x}->{output:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn refused_when_the_pool_is_short() {
        let mut t: Box<TranslationTables<1, 1>> = Box::default();
        assert_eq!(
            t.map_range(0x1f_f000, 0x20_1000, 0x1f_f000, 0),
            Err(OutOfTables)
        );
        assert_eq!(t.tables_used(), (0, 0));
        assert_eq!(t.lookup(0x1f_f000), Lookup::Invalid { size: GIB });
    }
}
