// SPDX-License-Identifier: MIT OR Apache-2.0
//! The Hyp-mode stage-1 translation tables (LPAE) and their coverage check.
//!
//! Capvisor identity-maps (VA == PA) everything it touches, once, at boot,
//! in long-descriptor tables walked through HTTBR with HTCR.T0SZ = 0: a
//! level-1 table of 4 entries (1 GiB each, VA bits 31:30), level-2 tables of
//! 512 entries (2 MiB each, VA bits 29:21) and level-3 tables of 512 entries
//! (4 KiB pages, VA bits 20:12). [`HypTables::map`] uses the largest
//! descriptor that fits each part of a region: a 1 GiB block where the
//! address is 1 GiB aligned and at least 1 GiB remains, else a 2 MiB block
//! under the same rule, else 4 KiB pages. Requests that are empty,
//! misaligned, wrap past 4 GiB or overlap an earlier region are refused, and a
//! refused request leaves the tables exactly as they were.
//!
//! Descriptor bits written (ARMv7-A ARM, long-descriptor format):
//!
//! | bits | field | value |
//! |---|---|---|
//! | 1:0 | type | 0b01 block (levels 1, 2), 0b11 table (levels 1, 2) or page (level 3) |
//! | 4:2 | AttrIndx | 0 Normal write-back (HMAIR0 byte 0 = 0xff), 1 Device (byte 1 = 0x04) |
//! | 7:6 | AP\[2:1\] | AP\[2\] = 1 read-only; AP\[1\] should-be-one in the Hyp regime |
//! | 9:8 | SH | 0b11 inner shareable (Normal), 0b10 (Device, ignored) |
//! | 10 | AF | 1 (no access-flag faults) |
//! | 39:12 | address | output address, or next-level table address |
//! | 54 | XN | execute-never for everything but code |
//!
//! [`HypTables::check_coverage`] proves, from the descriptor bits alone, that
//! each expected range is mapped identity with the intended type and
//! permissions, or, for a guard page, not mapped at all. It follows table
//! descriptors by finding which of the builder's own tables they point at,
//! so a corrupted descriptor is caught rather than followed.
//!
//! ```
//! use armv7a::hyp_tables::HypTables;
//! use hyp::memory::{Expectation, MemoryType, Permissions, Region};
//! let mut tables: Box<HypTables<1, 1>> = Box::default();
//! let uart = Region::new("uart0", 0x1600_0000, 0x1000, MemoryType::Device, Permissions::ReadWrite);
//! tables.map(&uart).unwrap();
//! assert!(tables.check_coverage(&[Expectation::Mapped(uart)]).is_ok());
//! ```

pub use crate::lpae::MappingStats;
use crate::lpae::{
    Lookup, OutOfTables, TranslationTables, ACCESS_FLAG, ADDRESS_MASK, EXECUTE_NEVER, SH_INNER,
    SH_OUTER,
};
#[cfg(test)]
use crate::lpae::{GIB, MIB2, PAGE, TYPE_BLOCK, TYPE_MASK, TYPE_TABLE_OR_PAGE};
use hyp::memory::{
    CoverageError, CoverageProblem, Expectation, MapError, MemoryType, Permissions, Region,
    PAGE_SIZE,
};

/// How many regions a builder remembers for its overlap checks.
pub const MAX_REGIONS: usize = 32;

/// HMAIR0: attribute index 0 = Normal, inner and outer write-back
/// read/write-allocate (0xff); index 1 = Device (0x04).
pub const HMAIR0: u32 = 0x0000_04ff;
/// HMAIR1: attribute indexes 4-7, unused.
pub const HMAIR1: u32 = 0;
/// HTCR: T0SZ = 0 (bits 2:0, a 32-bit input range), IRGN0 = 0b01 and
/// ORGN0 = 0b01 (bits 9:8 and 11:10: table walks cacheable write-back
/// write-allocate), SH0 = 0b11 (bits 13:12: inner shareable), and bits 31 and
/// 23, which are reserved, should-be-one.
pub const HTCR: u32 = (1 << 31) | (1 << 23) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8);

const ATTR_INDEX_SHIFT: u32 = 2;
const ATTR_NORMAL: u64 = 0;
const ATTR_DEVICE: u64 = 1;
const AP1_SHOULD_BE_ONE: u64 = 1 << 6;
const AP2_READ_ONLY: u64 = 1 << 7;

/// Hyp stage-1 tables with room for `L2_TABLES` level-2 and `L3_TABLES`
/// level-3 tables, all inside the structure (no allocation), so it can live
/// in a `static` initialised by [`HypTables::new`].
#[derive(Debug)]
pub struct HypTables<const L2_TABLES: usize, const L3_TABLES: usize> {
    tables: TranslationTables<L2_TABLES, L3_TABLES>,
    /// The regions mapped so far. An empty `heapless::Vec` is all zeroes
    /// (a length and uninitialised storage), so a static builder lives in
    /// `.bss` rather than taking space in the image.
    regions: heapless::Vec<Region, MAX_REGIONS>,
}

impl<const L2_TABLES: usize, const L3_TABLES: usize> Default for HypTables<L2_TABLES, L3_TABLES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const L2_TABLES: usize, const L3_TABLES: usize> HypTables<L2_TABLES, L3_TABLES> {
    /// Empty tables: nothing mapped.
    pub const fn new() -> Self {
        HypTables {
            tables: TranslationTables::new(),
            regions: heapless::Vec::new(),
        }
    }

    /// The regions mapped so far, in the order they were mapped.
    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The value for HTTBR: the level-1 table's address.
    pub fn root_table_address(&self) -> u64 {
        self.tables.root_table_address()
    }

    /// How many level-2 and level-3 tables are in use.
    pub fn tables_used(&self) -> (usize, usize) {
        self.tables.tables_used()
    }

    /// Counts the valid block and page descriptors.
    pub fn mapping_stats(&self) -> MappingStats {
        self.tables.mapping_stats()
    }

    /// Identity-maps `region` with its type and permissions.
    pub fn map(&mut self, region: &Region) -> Result<(), MapError> {
        let region = *region;
        if region.size == 0 {
            return Err(MapError::Empty { region });
        }
        if !region.start.is_multiple_of(PAGE_SIZE) || !region.size.is_multiple_of(PAGE_SIZE) {
            return Err(MapError::Misaligned { region });
        }
        if region.end() > 1 << 32 {
            return Err(MapError::Wraps { region });
        }
        if let Some(existing) = self.regions.iter().find(|r| r.overlaps(&region)) {
            return Err(MapError::Overlaps {
                region,
                existing: *existing,
            });
        }
        if self.regions.is_full() {
            return Err(MapError::TooManyRegions { region });
        }
        let start = region.start as u64;
        self.tables
            .map_range(start, region.end(), start, leaf_attributes(&region))
            .map_err(|OutOfTables| MapError::OutOfTables { region })?;
        // Cannot fail: fullness was checked above.
        let _ = self.regions.push(region);
        Ok(())
    }

    /// What is wrong at `address` for `expectation`, and how far (exclusive)
    /// the descriptor that decided it reaches.
    fn problem_at(
        &self,
        expectation: &Expectation,
        address: u64,
    ) -> (Option<CoverageProblem>, u64) {
        let lookup = self.tables.lookup(address);
        let size = lookup.size();
        let next = (address & !(size - 1)) + size;
        let problem = match (expectation, lookup) {
            (Expectation::Unmapped(_), Lookup::Invalid { .. }) => None,
            (Expectation::Unmapped(_), _) => Some(CoverageProblem::UnexpectedlyMapped),
            (Expectation::Mapped(_), Lookup::Invalid { .. }) => Some(CoverageProblem::Unmapped),
            (Expectation::Mapped(_), Lookup::StrayTable { address: found, .. }) => {
                Some(CoverageProblem::WrongAddress { found })
            }
            (Expectation::Mapped(region), Lookup::Leaf { descriptor, size }) => {
                leaf_problem(region, descriptor, size, address)
            }
        };
        (problem, next)
    }

    /// Proves that every expectation holds, byte for byte, by walking the
    /// descriptors. Returns the first range that does not.
    pub fn check_coverage(&self, expectations: &[Expectation]) -> Result<(), CoverageError> {
        for expectation in expectations {
            let region = *expectation.region();
            let end = region.end().min(1 << 32);
            let mut address = region.start as u64;
            while address < end {
                let (problem, next) = self.problem_at(expectation, address);
                let Some(problem) = problem else {
                    address = next;
                    continue;
                };
                // Extend over the following descriptors with the same problem.
                let mut run_end = next.min(end);
                while run_end < end {
                    let (following, after) = self.problem_at(expectation, run_end);
                    if !same_kind(following, problem) {
                        break;
                    }
                    run_end = after.min(end);
                }
                return Err(CoverageError {
                    region,
                    start: address as u32,
                    last: (run_end - 1) as u32,
                    problem,
                });
            }
        }
        Ok(())
    }

    /// Test hook: overwrite one level-1 entry.
    #[cfg(test)]
    fn set_level1_entry(&mut self, slot: usize, descriptor: u64) {
        self.tables.level1.entries[slot] = descriptor;
    }

    /// Test hook: XOR `bits` into the descriptor the walk for `address`
    /// ends at (or the table descriptor above it, when `table` is set).
    #[cfg(test)]
    fn corrupt(&mut self, address: u64, bits: u64, table: bool) {
        let t = &mut self.tables;
        let gib_slot = (address / GIB) as usize;
        let level1 = t.level1.entries[gib_slot];
        if level1 & TYPE_MASK == TYPE_BLOCK || (table && level1 & TYPE_MASK == TYPE_TABLE_OR_PAGE) {
            t.level1.entries[gib_slot] ^= bits;
            return;
        }
        let level2 = t.level2_index(level1).expect("a level-2 table");
        let slot = ((address >> 21) & 511) as usize;
        let descriptor = t.level2[level2].entries[slot];
        if descriptor & TYPE_MASK == TYPE_BLOCK || table {
            t.level2[level2].entries[slot] ^= bits;
            return;
        }
        let level3 = t.level3_index(descriptor).expect("a level-3 table");
        t.level3[level3].entries[((address >> 12) & 511) as usize] ^= bits;
    }
}

/// Whether two problems are of the same kind (for extending a bad run).
fn same_kind(candidate: Option<CoverageProblem>, problem: CoverageProblem) -> bool {
    match (candidate, problem) {
        (Some(CoverageProblem::WrongAddress { .. }), CoverageProblem::WrongAddress { .. }) => true,
        (Some(other), problem) => other == problem,
        (None, _) => false,
    }
}

/// The attribute bits of a block or page descriptor for `region`.
fn leaf_attributes(region: &Region) -> u64 {
    let memory = match region.memory {
        MemoryType::Normal => (ATTR_NORMAL << ATTR_INDEX_SHIFT) | SH_INNER,
        MemoryType::Device => (ATTR_DEVICE << ATTR_INDEX_SHIFT) | SH_OUTER,
    };
    let access = match region.permissions {
        Permissions::ReadExecute => AP2_READ_ONLY,
        Permissions::ReadOnly => AP2_READ_ONLY | EXECUTE_NEVER,
        Permissions::ReadWrite => EXECUTE_NEVER,
    };
    memory | access | ACCESS_FLAG | AP1_SHOULD_BE_ONE
}

/// Decodes the permissions of a leaf descriptor (`None`: writable and
/// executable, which Capvisor never maps).
fn decode_permissions(descriptor: u64) -> Option<Permissions> {
    match (
        descriptor & AP2_READ_ONLY != 0,
        descriptor & EXECUTE_NEVER != 0,
    ) {
        (true, false) => Some(Permissions::ReadExecute),
        (true, true) => Some(Permissions::ReadOnly),
        (false, true) => Some(Permissions::ReadWrite),
        (false, false) => None,
    }
}

/// What is wrong with leaf `descriptor` (spanning `size` bytes) for
/// `address` in `region`.
fn leaf_problem(
    region: &Region,
    descriptor: u64,
    size: u64,
    address: u64,
) -> Option<CoverageProblem> {
    let base = address & !(size - 1);
    let output = descriptor & ADDRESS_MASK & !(size - 1);
    if output != base {
        return Some(CoverageProblem::WrongAddress {
            found: output + (address - base),
        });
    }
    if descriptor & ACCESS_FLAG == 0 {
        // Any access would take an access-flag fault: as good as unmapped.
        return Some(CoverageProblem::Unmapped);
    }
    let memory = match (descriptor >> ATTR_INDEX_SHIFT) & 0b111 {
        ATTR_NORMAL => MemoryType::Normal,
        ATTR_DEVICE => MemoryType::Device,
        other => {
            return Some(CoverageProblem::UnknownMemoryType {
                attribute_index: other as u8,
            })
        }
    };
    if memory != region.memory {
        return Some(CoverageProblem::WrongMemoryType { found: memory });
    }
    let permissions = decode_permissions(descriptor);
    if permissions != Some(region.permissions) {
        return Some(CoverageProblem::WrongPermissions { found: permissions });
    }
    None
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;
    use std::vec::Vec;

    type Tables = HypTables<4, 8>;

    fn tables() -> Box<Tables> {
        Box::default()
    }

    fn normal(name: &'static str, start: u32, size: u32, permissions: Permissions) -> Region {
        Region::new(name, start, size, MemoryType::Normal, permissions)
    }

    fn device(name: &'static str, start: u32) -> Region {
        Region::new(
            name,
            start,
            0x1000,
            MemoryType::Device,
            Permissions::ReadWrite,
        )
    }

    /// Every table entry, for before/after comparisons.
    fn snapshot(t: &Tables) -> Vec<u64> {
        let mut all = t.tables.level1.entries.to_vec();
        for table in t.tables.level2.iter().chain(t.tables.level3.iter()) {
            all.extend_from_slice(&table.entries);
        }
        all.push(t.tables.level2_used as u64);
        all.push(t.tables.level3_used as u64);
        all.push(t.regions.len() as u64);
        all
    }

    fn leaf(t: &Tables, address: u64) -> (u64, u64) {
        match t.tables.lookup(address) {
            Lookup::Leaf { descriptor, size } => (descriptor, size),
            other => panic!("{address:#x} is not mapped: {other:?}"),
        }
    }

    /// A realistic hypervisor layout: the one the Integrator/CP board uses.
    fn layout() -> Vec<Region> {
        std::vec![
            normal("text", 0x1_0000, 0x3000, Permissions::ReadExecute),
            normal("rodata", 0x1_3000, 0x1000, Permissions::ReadOnly),
            normal("data", 0x1_4000, 0x1000, Permissions::ReadWrite),
            normal("bss", 0x1_5000, 0x2_0000, Permissions::ReadWrite),
            normal("stack", 0x3_6000, 0x1_0000, Permissions::ReadWrite),
            device("timers", 0x1300_0000),
            device("pic", 0x1400_0000),
            device("uart0", 0x1600_0000),
            normal(
                "guest-ram",
                0x8000_0000,
                0x4000_0000,
                Permissions::ReadWrite
            ),
        ]
    }

    fn guard() -> Region {
        normal("stack-guard", 0x3_5000, 0x1000, Permissions::ReadWrite)
    }

    fn mapped_layout() -> Box<Tables> {
        let mut t = tables();
        for region in layout() {
            t.map(&region).unwrap();
        }
        t
    }

    fn expectations() -> Vec<Expectation> {
        let mut all: Vec<_> = layout().into_iter().map(Expectation::Mapped).collect();
        all.push(Expectation::Unmapped(guard()));
        all
    }

    #[test]
    fn register_values() {
        assert_eq!(HTCR, 0x8080_3500);
        assert_eq!(HMAIR0 & 0xff, 0xff);
        assert_eq!((HMAIR0 >> 8) & 0xff, 0x04);
    }

    #[test]
    fn attribute_bits_per_kind() {
        let t = mapped_layout();
        let (text, _) = leaf(&t, 0x1_0000);
        assert_eq!(
            text,
            0x1_0000 | 0b11 | (0b11 << 8) | (1 << 10) | (1 << 7) | (1 << 6)
        );
        let (rodata, _) = leaf(&t, 0x1_3000);
        assert_eq!(
            rodata,
            0x1_3000 | 0b11 | (0b11 << 8) | (1 << 10) | (1 << 7) | (1 << 6) | (1 << 54)
        );
        let (data, _) = leaf(&t, 0x1_4000);
        assert_eq!(
            data,
            0x1_4000 | 0b11 | (0b11 << 8) | (1 << 10) | (1 << 6) | (1 << 54)
        );
        let (uart, _) = leaf(&t, 0x1600_0000);
        assert_eq!(
            uart,
            0x1600_0000 | 0b11 | (1 << 2) | (0b10 << 8) | (1 << 10) | (1 << 6) | (1 << 54)
        );
        let (pool, size) = leaf(&t, 0x9234_5000);
        assert_eq!(size, GIB);
        assert_eq!(
            pool,
            0x8000_0000 | 0b01 | (0b11 << 8) | (1 << 10) | (1 << 6) | (1 << 54)
        );
    }

    #[test]
    fn one_gib_block_needs_no_table() {
        let mut t = tables();
        t.map(&normal(
            "pool",
            0x8000_0000,
            0x4000_0000,
            Permissions::ReadWrite,
        ))
        .unwrap();
        assert_eq!(t.tables_used(), (0, 0));
        assert_eq!(
            t.mapping_stats(),
            MappingStats {
                gib_blocks: 1,
                mib2_blocks: 0,
                pages: 0
            }
        );
    }

    #[test]
    fn two_mib_blocks_where_aligned() {
        let mut t = tables();
        t.map(&normal(
            "r",
            0x0020_0000,
            0x0040_0000,
            Permissions::ReadWrite,
        ))
        .unwrap();
        assert_eq!(t.tables_used(), (1, 0));
        assert_eq!(
            t.mapping_stats(),
            MappingStats {
                gib_blocks: 0,
                mib2_blocks: 2,
                pages: 0
            }
        );
        assert_eq!(leaf(&t, 0x0050_0000).1, MIB2);
    }

    #[test]
    fn pages_for_small_regions() {
        let mut t = tables();
        t.map(&normal("text", 0x1_0000, 0x3000, Permissions::ReadExecute))
            .unwrap();
        assert_eq!(t.tables_used(), (1, 1));
        assert_eq!(
            t.mapping_stats(),
            MappingStats {
                gib_blocks: 0,
                mib2_blocks: 0,
                pages: 3
            }
        );
    }

    #[test]
    fn region_straddling_a_2_mib_boundary() {
        let mut t = tables();
        // 1 MiB before 0x0040_0000, 2 MiB block, 1 MiB after.
        let r = normal("r", 0x0030_0000, 0x0040_0000, Permissions::ReadOnly);
        t.map(&r).unwrap();
        assert_eq!(t.tables_used(), (1, 2));
        assert_eq!(
            t.mapping_stats(),
            MappingStats {
                gib_blocks: 0,
                mib2_blocks: 1,
                pages: 512
            }
        );
        assert!(t.check_coverage(&[Expectation::Mapped(r)]).is_ok());
        assert!(t.tables.lookup(0x002f_f000) == Lookup::Invalid { size: PAGE });
        assert!(t.tables.lookup(0x0070_0000) == Lookup::Invalid { size: PAGE });
    }

    #[test]
    fn region_straddling_a_gib_boundary() {
        let mut t = tables();
        let r = normal("r", 0x3fff_f000, 0x2000, Permissions::ReadWrite);
        t.map(&r).unwrap();
        assert_eq!(t.tables_used(), (2, 2));
        assert!(t.check_coverage(&[Expectation::Mapped(r)]).is_ok());
    }

    #[test]
    fn rejections_leave_tables_unchanged() {
        let mut t = mapped_layout();
        let before = snapshot(&t);
        let cases = [
            (
                normal("empty", 0x5000_0000, 0, Permissions::ReadOnly),
                "Empty",
            ),
            (
                normal("odd-start", 0x5000_0800, 0x1000, Permissions::ReadOnly),
                "Misaligned",
            ),
            (
                normal("odd-size", 0x5000_0000, 0x1800, Permissions::ReadOnly),
                "Misaligned",
            ),
            (
                normal("wraps", 0xffff_f000, 0x2000, Permissions::ReadOnly),
                "Wraps",
            ),
            (
                normal("overlap", 0x1_2000, 0x2000, Permissions::ReadOnly),
                "Overlaps",
            ),
        ];
        for (region, kind) in cases {
            let error = t.map(&region).unwrap_err();
            let name = match error {
                MapError::Empty { .. } => "Empty",
                MapError::Misaligned { .. } => "Misaligned",
                MapError::Wraps { .. } => "Wraps",
                MapError::Overlaps { .. } => "Overlaps",
                MapError::OutOfTables { .. } => "OutOfTables",
                MapError::TooManyRegions { .. } => "TooManyRegions",
            };
            assert_eq!(name, kind, "{}", region.name);
            assert!(snapshot(&t) == before, "{} changed the tables", region.name);
        }
    }

    #[test]
    fn overlap_names_the_earlier_region() {
        let mut t = mapped_layout();
        let late = device("late", 0x1600_0000);
        match t.map(&late) {
            Err(MapError::Overlaps { region, existing }) => {
                assert_eq!(region.name, "late");
                assert_eq!(existing.name, "uart0");
            }
            other => panic!("{other:?}"),
        }
        let message = std::format!("{}", t.map(&late).unwrap_err());
        assert!(message.contains("overlaps 'uart0'"), "{message}");
    }

    #[test]
    fn adjacent_regions_with_different_attributes() {
        let mut t = tables();
        let a = normal("a", 0x1_0000, 0x1000, Permissions::ReadExecute);
        let b = normal("b", 0x1_1000, 0x1000, Permissions::ReadWrite);
        t.map(&a).unwrap();
        t.map(&b).unwrap();
        assert_eq!(t.tables_used(), (1, 1));
        assert!(t
            .check_coverage(&[Expectation::Mapped(a), Expectation::Mapped(b)])
            .is_ok());
        assert_eq!(t.regions(), &[a, b]);
    }

    #[test]
    fn out_of_tables_with_a_tiny_pool() {
        let mut t: Box<HypTables<1, 1>> = Box::default();
        t.map(&device("uart0", 0x1600_0000)).unwrap();
        let before_used = t.tables_used();
        let error = t.map(&device("pic", 0x1400_0000)).unwrap_err();
        assert!(matches!(error, MapError::OutOfTables { .. }), "{error:?}");
        assert_eq!(t.tables_used(), before_used);
        assert_eq!(t.regions().len(), 1);
        // A second level-2 table is also out of reach.
        let error = t
            .map(&normal("far", 0x4000_0000, 0x1000, Permissions::ReadOnly))
            .unwrap_err();
        assert!(matches!(error, MapError::OutOfTables { .. }), "{error:?}");
    }

    #[test]
    fn too_many_regions() {
        let mut t: Box<HypTables<1, 1>> = Box::default();
        for i in 0..MAX_REGIONS as u32 {
            t.map(&normal("page", i * 0x1000, 0x1000, Permissions::ReadOnly))
                .unwrap();
        }
        let error = t.map(&normal(
            "one-more",
            0x10_0000,
            0x1000,
            Permissions::ReadOnly,
        ));
        assert!(
            matches!(error, Err(MapError::TooManyRegions { .. })),
            "{error:?}"
        );
    }

    #[test]
    fn coverage_of_a_realistic_layout() {
        let t = mapped_layout();
        assert_eq!(t.check_coverage(&expectations()), Ok(()));
        assert_eq!(t.tables_used(), (1, 4));
    }

    #[test]
    fn coverage_finds_a_missing_page() {
        let mut t = tables();
        for mut region in layout() {
            if region.name == "bss" {
                region.size -= 0x1000; // leave out the last page
            }
            t.map(&region).unwrap();
        }
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "bss");
        assert_eq!((error.start, error.last), (0x3_4000, 0x3_4fff));
        assert_eq!(error.problem, CoverageProblem::Unmapped);
        assert_eq!(
            std::format!("{error}"),
            "0x00034000-0x00034fff of region 'bss' (normal rw-) is not mapped"
        );
    }

    #[test]
    fn coverage_reports_the_whole_unmapped_run() {
        let mut t = tables();
        let wanted = normal("big", 0x10_0000, 0x30_0000, Permissions::ReadOnly);
        t.map(&normal("part", 0x10_0000, 0x1000, Permissions::ReadOnly))
            .unwrap();
        let error = t
            .check_coverage(&[Expectation::Mapped(wanted)])
            .unwrap_err();
        assert_eq!((error.start, error.last), (0x10_1000, 0x3f_ffff));
    }

    #[test]
    fn coverage_finds_wrong_permissions_and_type() {
        let mut t = tables();
        for region in layout() {
            let region = match region.name {
                "rodata" => normal("rodata", region.start, region.size, Permissions::ReadWrite),
                "uart0" => normal("uart0", region.start, region.size, Permissions::ReadWrite),
                _ => region,
            };
            t.map(&region).unwrap();
        }
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "rodata");
        assert_eq!(
            error.problem,
            CoverageProblem::WrongPermissions {
                found: Some(Permissions::ReadWrite)
            }
        );
        let uart_only = [Expectation::Mapped(device("uart0", 0x1600_0000))];
        let error = t.check_coverage(&uart_only).unwrap_err();
        assert_eq!(
            error.problem,
            CoverageProblem::WrongMemoryType {
                found: MemoryType::Normal
            }
        );
    }

    #[test]
    fn coverage_finds_a_mapped_guard_page() {
        let mut t = mapped_layout();
        t.map(&guard()).unwrap();
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "stack-guard");
        assert_eq!(error.problem, CoverageProblem::UnexpectedlyMapped);
    }

    #[test]
    fn coverage_catches_corrupted_descriptors() {
        // A flipped output-address bit in a page.
        let mut t = mapped_layout();
        t.corrupt(0x1_3000, 1 << 20, false);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "rodata");
        assert_eq!(
            error.problem,
            CoverageProblem::WrongAddress { found: 0x11_3000 }
        );

        // Execute permission sneaking into writable data.
        let mut t = mapped_layout();
        t.corrupt(0x1_4000, EXECUTE_NEVER, false);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(
            error.problem,
            CoverageProblem::WrongPermissions { found: None }
        );

        // The access flag cleared.
        let mut t = mapped_layout();
        t.corrupt(0x1600_0000, ACCESS_FLAG, false);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(
            (error.region.name, error.problem),
            ("uart0", CoverageProblem::Unmapped)
        );

        // An unknown attribute index in the 1 GiB block.
        let mut t = mapped_layout();
        t.corrupt(0x8000_0000, 0b100 << 2, false);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(
            error.problem,
            CoverageProblem::UnknownMemoryType { attribute_index: 4 }
        );

        // A table descriptor pointing somewhere else.
        let mut t = mapped_layout();
        t.corrupt(0x1_0000, 1 << 13, true);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "text");
        assert!(
            matches!(error.problem, CoverageProblem::WrongAddress { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn reserved_level3_encoding_counts_as_unmapped() {
        let mut t = mapped_layout();
        t.corrupt(0x1_0000, 0b10, false); // 0b11 -> 0b01
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(
            (error.start, error.last, error.problem),
            (0x1_0000, 0x1_0fff, CoverageProblem::Unmapped)
        );
    }

    #[test]
    fn invalid_level1_entry_is_unmapped() {
        let mut t = mapped_layout();
        t.set_level1_entry(2, 0);
        let error = t.check_coverage(&expectations()).unwrap_err();
        assert_eq!(error.region.name, "guest-ram");
        assert_eq!((error.start, error.last), (0x8000_0000, 0xbfff_ffff));
    }
}
