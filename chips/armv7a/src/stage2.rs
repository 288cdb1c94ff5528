// SPDX-License-Identifier: MIT OR Apache-2.0
//! Per-VM stage-2 translation: guest-physical addresses (IPAs) to host RAM.
//!
//! Each VM gets its own [`Stage2Tables`], built once before it first runs:
//! its RAM (IPA 0x4000_0000 upwards on the guest platform) mapped onto a
//! disjoint slice of the host's guest pool, and nothing else. Any other IPA
//! the guest touches faults to Hyp, where a virtual device emulates it or
//! the fault path reflects it. The tables use the engine in
//! [`crate::lpae`] with stage-2 descriptor attributes:
//!
//! | bits | field | value |
//! |---|---|---|
//! | 5:2 | MemAttr | 0b1111 Normal, inner and outer write-back; 0b0001 Device |
//! | 7:6 | S2AP | 0b01 read-only, 0b11 read/write |
//! | 9:8 | SH | 0b11 inner shareable (Normal), 0b10 (Device) |
//! | 10 | AF | 1 |
//! | 54 | XN | set for non-executable mappings |
//!
//! ```
//! use armv7a::stage2::{GuestAccess, GuestMapping, Stage2Tables};
//! use hyp::capabilities::Stage2MappingCapability;
//! use hyp::memory::MemoryType;
//! // Only a board (a crate allowed unsafe code) can make the token.
//! let capability = hyp::create_capability!(Stage2MappingCapability);
//! let mut tables: Box<Stage2Tables<1, 1>> = Box::default();
//! let ram = GuestMapping {
//!     name: "ram", ipa: 0x4000_0000, physical: 0x8800_0000, size: 0x0800_0000,
//!     memory: MemoryType::Normal, access: GuestAccess::ReadWriteExecute,
//! };
//! tables.map(&capability, &ram).unwrap();
//! assert_eq!(tables.translate(0x4000_1234).unwrap().physical, 0x8800_1234);
//! assert!(tables.translate(0x0900_0000).is_none());
//! ```

use crate::lpae::{
    OutOfTables, TranslationTables, ACCESS_FLAG, EXECUTE_NEVER, PAGE, SH_INNER, SH_OUTER,
};
use core::fmt;
use hyp::capabilities::Stage2MappingCapability;
use hyp::memory::MemoryType;

/// VTCR: T0SZ = 0 (a 32-bit IPA range), SL0 = 0b01 (walks start at level 1,
/// bits 7:6), IRGN0 = ORGN0 = 0b01 (write-back write-allocate walks), SH0 =
/// 0b11 (inner shareable), bit 31 reserved should-be-one.
pub const VTCR: u32 = (1 << 31) | (0b11 << 12) | (0b01 << 10) | (0b01 << 8) | (0b01 << 6);

/// The VTTBR value for a VM: its VMID in bits 55:48 and its level-1 table.
pub const fn vttbr(vmid: u8, root_table_address: u64) -> u64 {
    ((vmid as u64) << 48) | root_table_address
}

/// How many mappings one VM's tables remember for overlap checks.
pub const MAX_MAPPINGS: usize = 8;

const MEMATTR_NORMAL_WRITE_BACK: u64 = 0b1111 << 2;
const MEMATTR_DEVICE: u64 = 0b0001 << 2;
const S2AP_READ_ONLY: u64 = 0b01 << 6;
const S2AP_READ_WRITE: u64 = 0b11 << 6;
const S2AP_MASK: u64 = 0b11 << 6;
const MEMATTR_MASK: u64 = 0b1111 << 2;

/// What a guest may do with a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuestAccess {
    /// RAM: read, write and execute.
    ReadWriteExecute,
    /// Read and execute (a ROM image).
    ReadExecute,
    /// Read and write, never execute (a passed-through device).
    ReadWrite,
    /// Read only, never execute.
    ReadOnly,
}

/// One range of a VM's guest-physical address space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestMapping {
    /// Name for error messages (`ram`).
    pub name: &'static str,
    /// First guest-physical address.
    pub ipa: u32,
    /// First host-physical address behind it.
    pub physical: u64,
    /// Length in bytes.
    pub size: u32,
    /// Memory type.
    pub memory: MemoryType,
    /// Guest permissions.
    pub access: GuestAccess,
}

impl GuestMapping {
    /// One past the last IPA.
    pub const fn end(&self) -> u64 {
        self.ipa as u64 + self.size as u64
    }
}

/// Why a guest mapping was refused; the tables are unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage2Error {
    /// Size 0.
    Empty { mapping: GuestMapping },
    /// IPA, physical address or size not page aligned.
    Misaligned { mapping: GuestMapping },
    /// Past the 4 GiB IPA space or the 40-bit physical space.
    OutOfRange { mapping: GuestMapping },
    /// Shares IPAs with an earlier mapping.
    Overlaps {
        mapping: GuestMapping,
        existing: GuestMapping,
    },
    /// The table pool is exhausted.
    OutOfTables { mapping: GuestMapping },
    /// More mappings than [`MAX_MAPPINGS`].
    TooManyMappings { mapping: GuestMapping },
}

impl fmt::Display for Stage2Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let describe = |f: &mut fmt::Formatter<'_>, m: &GuestMapping| {
            write!(
                f,
                "guest mapping '{}' IPA {:#010x}+{:#x} -> {:#x}",
                m.name, m.ipa, m.size, m.physical
            )
        };
        match self {
            Stage2Error::Empty { mapping } => {
                describe(f, mapping)?;
                write!(f, " is empty")
            }
            Stage2Error::Misaligned { mapping } => {
                describe(f, mapping)?;
                write!(f, " is not aligned to 4 KiB pages")
            }
            Stage2Error::OutOfRange { mapping } => {
                describe(f, mapping)?;
                write!(f, " runs past the address space")
            }
            Stage2Error::Overlaps { mapping, existing } => {
                describe(f, mapping)?;
                write!(
                    f,
                    " overlaps '{}' at IPA {:#010x}",
                    existing.name, existing.ipa
                )
            }
            Stage2Error::OutOfTables { mapping } => {
                describe(f, mapping)?;
                write!(f, " needs more stage-2 tables than the VM has")
            }
            Stage2Error::TooManyMappings { mapping } => {
                describe(f, mapping)?;
                write!(f, " is one mapping too many (at most {})", MAX_MAPPINGS)
            }
        }
    }
}

/// Where an IPA leads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage2Translation {
    /// Host-physical address.
    pub physical: u64,
    /// Memory type (`None`: a MemAttr Capvisor never writes).
    pub memory: Option<MemoryType>,
    /// Guest permissions (`None`: an encoding Capvisor never writes).
    pub access: Option<GuestAccess>,
}

/// One VM's stage-2 tables.
#[derive(Debug, Default)]
pub struct Stage2Tables<const L2_TABLES: usize, const L3_TABLES: usize> {
    tables: TranslationTables<L2_TABLES, L3_TABLES>,
    mappings: heapless::Vec<GuestMapping, MAX_MAPPINGS>,
}

impl<const L2_TABLES: usize, const L3_TABLES: usize> Stage2Tables<L2_TABLES, L3_TABLES> {
    /// Empty tables: every IPA faults.
    pub const fn new() -> Self {
        Stage2Tables {
            tables: TranslationTables::new(),
            mappings: heapless::Vec::new(),
        }
    }

    /// Maps `mapping`, or refuses it leaving the tables unchanged. What a
    /// VM may reach is the board's to decide: it takes the capability.
    pub fn map(
        &mut self,
        _capability: &dyn Stage2MappingCapability,
        mapping: &GuestMapping,
    ) -> Result<(), Stage2Error> {
        let mapping = *mapping;
        if mapping.size == 0 {
            return Err(Stage2Error::Empty { mapping });
        }
        let page = PAGE as u32;
        if !mapping.ipa.is_multiple_of(page)
            || !mapping.size.is_multiple_of(page)
            || !mapping.physical.is_multiple_of(PAGE)
        {
            return Err(Stage2Error::Misaligned { mapping });
        }
        if mapping.end() > 1 << 32 || mapping.physical + mapping.size as u64 > 1 << 40 {
            return Err(Stage2Error::OutOfRange { mapping });
        }
        if let Some(existing) = self
            .mappings
            .iter()
            .find(|m| (m.ipa as u64) < mapping.end() && (mapping.ipa as u64) < m.end())
        {
            return Err(Stage2Error::Overlaps {
                mapping,
                existing: *existing,
            });
        }
        if self.mappings.is_full() {
            return Err(Stage2Error::TooManyMappings { mapping });
        }
        self.tables
            .map_range(
                mapping.ipa as u64,
                mapping.end(),
                mapping.physical,
                attributes(&mapping),
            )
            .map_err(|OutOfTables| Stage2Error::OutOfTables { mapping })?;
        // Cannot fail: fullness was checked above.
        let _ = self.mappings.push(mapping);
        Ok(())
    }

    /// The mappings made so far.
    pub fn mappings(&self) -> &[GuestMapping] {
        &self.mappings
    }

    /// Where `ipa` leads, as the MMU's stage-2 walk would find it.
    pub fn translate(&self, ipa: u32) -> Option<Stage2Translation> {
        let (physical, descriptor) = self.tables.translate(ipa as u64)?;
        let memory = match descriptor & MEMATTR_MASK {
            MEMATTR_NORMAL_WRITE_BACK => Some(MemoryType::Normal),
            MEMATTR_DEVICE => Some(MemoryType::Device),
            _ => None,
        };
        let access = match (descriptor & S2AP_MASK, descriptor & EXECUTE_NEVER != 0) {
            (S2AP_READ_WRITE, false) => Some(GuestAccess::ReadWriteExecute),
            (S2AP_READ_WRITE, true) => Some(GuestAccess::ReadWrite),
            (S2AP_READ_ONLY, false) => Some(GuestAccess::ReadExecute),
            (S2AP_READ_ONLY, true) => Some(GuestAccess::ReadOnly),
            _ => None,
        };
        let access = if descriptor & ACCESS_FLAG == 0 {
            None
        } else {
            access
        };
        Some(Stage2Translation {
            physical,
            memory,
            access,
        })
    }

    /// A switch for the 2 MiB block that maps `ipa`, to unmap and map it
    /// again while the VM runs (a flash bank that traps in its command
    /// modes: `hyp::hil::flash`); `None` unless a level-2 block maps it.
    ///
    /// # Safety
    /// The tables must live as long as the switch (a `static`) and must
    /// not be changed through any other path while it is used: the switch
    /// writes the descriptor through a pointer.
    pub unsafe fn block_switch(&mut self, ipa: u32) -> Option<BlockSwitch> {
        let descriptor = self.tables.block_descriptor(ipa as u64)?;
        Some(BlockSwitch {
            mapped: *descriptor,
            descriptor: descriptor as *mut u64,
        })
    }

    /// The level-1 table's address, for [`vttbr`].
    pub fn root_table_address(&self) -> u64 {
        self.tables.root_table_address()
    }

    /// Level-2 and level-3 tables in use.
    pub fn tables_used(&self) -> (usize, usize) {
        self.tables.tables_used()
    }
}

/// One block descriptor of a VM's stage 2 that can be turned off (every
/// access in its 2 MiB faults to Hyp as a translation fault) and on again
/// ([`Stage2Tables::block_switch`]).
#[derive(Debug)]
pub struct BlockSwitch {
    descriptor: *mut u64,
    mapped: u64,
}

impl BlockSwitch {
    /// Maps the block as it was made (`true`) or leaves it invalid, then
    /// forgets every CPU's cached translations of non-Hyp guests
    /// (TLBIALLNSNHIS: all VMIDs, inner shareable), so the change holds on
    /// each vCPU of the VM before this returns.
    pub fn set(&self, mapped: bool) {
        let value = if mapped { self.mapped } else { 0 };
        // SAFETY: `block_switch`'s contract: the descriptor lives in
        // tables that outlive the switch and nothing else writes it; an
        // aligned 64-bit store the table walker reads as valid or invalid.
        unsafe { core::ptr::write_volatile(self.descriptor, value) };
        #[cfg(target_arch = "arm")]
        // SAFETY: barriers and a TLB invalidation: no memory is touched;
        // other VMs only refill their TLB entries from their own tables.
        unsafe {
            core::arch::asm!(
                "dsb ish",
                "mcr p15, 4, {zero}, c8, c3, 4",
                "dsb ish",
                "isb",
                zero = in(reg) 0u32,
                options(nostack, preserves_flags)
            );
        }
    }
}

/// The stage-2 attribute bits for `mapping`.
fn attributes(mapping: &GuestMapping) -> u64 {
    let memory = match mapping.memory {
        MemoryType::Normal => MEMATTR_NORMAL_WRITE_BACK | SH_INNER,
        MemoryType::Device => MEMATTR_DEVICE | SH_OUTER,
    };
    let access = match mapping.access {
        GuestAccess::ReadWriteExecute => S2AP_READ_WRITE,
        GuestAccess::ReadExecute => S2AP_READ_ONLY,
        GuestAccess::ReadWrite => S2AP_READ_WRITE | EXECUTE_NEVER,
        GuestAccess::ReadOnly => S2AP_READ_ONLY | EXECUTE_NEVER,
    };
    memory | access | ACCESS_FLAG
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::boxed::Box;

    type Tables = Stage2Tables<2, 4>;

    fn ram(ipa: u32, physical: u64, size: u32) -> GuestMapping {
        GuestMapping {
            name: "ram",
            ipa,
            physical,
            size,
            memory: MemoryType::Normal,
            access: GuestAccess::ReadWriteExecute,
        }
    }

    fn capability() -> impl Stage2MappingCapability {
        hyp::create_capability!(Stage2MappingCapability)
    }

    #[test]
    fn register_values() {
        // The setup verified on QEMU (PLATFORM.md).
        assert_eq!(VTCR, 0x8000_3540);
        assert_eq!(vttbr(3, 0x0002_3000), 0x0003_0000_0002_3000);
    }

    #[test]
    fn guest_ram_is_translated_and_nothing_else() {
        let mut t: Box<Tables> = Box::default();
        t.map(&capability(), &ram(0x4000_0000, 0x8800_0000, 0x0800_0000))
            .unwrap();
        let first = t.translate(0x4000_0000).unwrap();
        assert_eq!(
            first,
            Stage2Translation {
                physical: 0x8800_0000,
                memory: Some(MemoryType::Normal),
                access: Some(GuestAccess::ReadWriteExecute)
            }
        );
        assert_eq!(t.translate(0x47ff_fffc).unwrap().physical, 0x8fff_fffc);
        for unmapped in [
            0,
            0x0800_0000,
            0x0900_0000,
            0x3fff_f000,
            0x4800_0000,
            0xffff_f000,
        ] {
            assert_eq!(t.translate(unmapped), None, "{unmapped:#x}");
        }
        // 64 x 2 MiB blocks under one level-2 table.
        assert_eq!(t.tables_used(), (1, 0));
    }

    #[test]
    fn a_block_switch_unmaps_and_maps_one_block() {
        let mut t: Box<Tables> = Box::default();
        let bank = GuestMapping {
            name: "flash-bank-1",
            ipa: 0x0400_0000,
            physical: 0x8860_0000,
            size: 0x0020_0000,
            memory: MemoryType::Normal,
            access: GuestAccess::ReadOnly,
        };
        t.map(&capability(), &ram(0x4000_0000, 0x8800_0000, 0x0040_0000))
            .unwrap();
        t.map(&capability(), &bank).unwrap();
        // Pages are not blocks: no switch for a page-mapped range.
        t.map(&capability(), &ram(0x0900_0000, 0x9000_0000, 0x1000))
            .unwrap();
        // SAFETY: the boxed tables outlive the switches (dropped first)
        // and are only read through `translate` meanwhile.
        let page = unsafe { t.block_switch(0x0900_0000) };
        // SAFETY: as above.
        let unmapped = unsafe { t.block_switch(0x0800_0000) };
        assert!(page.is_none() && unmapped.is_none());
        // SAFETY: as above.
        let switch = unsafe { t.block_switch(0x0410_0000) }.unwrap();
        let before = t.translate(0x0410_0010);
        assert_eq!(before.unwrap().physical, 0x8870_0010);
        switch.set(false);
        assert_eq!(t.translate(0x0410_0010), None);
        assert_eq!(t.translate(0x4000_0000).unwrap().physical, 0x8800_0000);
        switch.set(true);
        assert_eq!(t.translate(0x0410_0010), before);
        assert_eq!(before.unwrap().access, Some(GuestAccess::ReadOnly));
    }

    #[test]
    fn descriptor_bits() {
        let mut t: Box<Tables> = Box::default();
        let mapping = GuestMapping {
            name: "rom",
            ipa: 0x1000,
            physical: 0x8000_5000,
            size: 0x1000,
            memory: MemoryType::Device,
            access: GuestAccess::ReadOnly,
        };
        t.map(&capability(), &mapping).unwrap();
        let (_, descriptor) = t.tables.translate(0x1000).unwrap();
        assert_eq!(
            descriptor,
            0x8000_5000 | 0b11 | (0b0001 << 2) | (0b01 << 6) | (0b10 << 8) | (1 << 10) | (1 << 54)
        );
        assert_eq!(
            t.translate(0x1000).unwrap().access,
            Some(GuestAccess::ReadOnly)
        );
    }

    #[test]
    fn refusals_name_the_mapping_and_change_nothing() {
        let mut t: Box<Tables> = Box::default();
        t.map(&capability(), &ram(0x4000_0000, 0x8000_0000, 0x0800_0000))
            .unwrap();
        let used = t.tables_used();
        let overlap = t
            .map(&capability(), &ram(0x47ff_f000, 0x9000_0000, 0x2000))
            .unwrap_err();
        assert!(matches!(overlap, Stage2Error::Overlaps { .. }));
        assert_eq!(
            std::format!("{overlap}"),
            "guest mapping 'ram' IPA 0x47fff000+0x2000 -> 0x90000000 overlaps 'ram' at IPA 0x40000000"
        );
        assert!(matches!(
            t.map(&capability(), &ram(0x5000_0800, 0x9000_0000, 0x1000)),
            Err(Stage2Error::Misaligned { .. })
        ));
        assert!(matches!(
            t.map(&capability(), &ram(0x5000_0000, 0x9000_0800, 0x1000)),
            Err(Stage2Error::Misaligned { .. })
        ));
        assert!(matches!(
            t.map(&capability(), &ram(0xffff_f000, 0x9000_0000, 0x2000)),
            Err(Stage2Error::OutOfRange { .. })
        ));
        assert!(matches!(
            t.map(&capability(), &ram(0x5000_0000, 0x9000_0000, 0)),
            Err(Stage2Error::Empty { .. })
        ));
        assert_eq!(t.tables_used(), used);
        assert_eq!(t.mappings().len(), 1);
    }

    #[test]
    fn out_of_tables() {
        let mut t: Box<Stage2Tables<1, 1>> = Box::default();
        // Output one page off 2 MiB alignment: needs two level-3 tables.
        let error = t
            .map(&capability(), &ram(0x4000_0000, 0x8000_1000, 0x0040_0000))
            .unwrap_err();
        assert!(
            matches!(error, Stage2Error::OutOfTables { .. }),
            "{error:?}"
        );
        assert_eq!(t.translate(0x4000_0000), None);
    }
}
