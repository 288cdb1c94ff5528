// SPDX-License-Identifier: MIT OR Apache-2.0
//! Memory regions the hypervisor maps for itself, and the errors of mapping.
//!
//! Design rule 1 (`docs/architecture.md`): Hyp mode never takes a
//! translation fault. The board
//! lists every range the hypervisor will ever touch (its linker sections, the
//! device register blocks it drives, the pool of RAM it hands to guests) as
//! [`Region`]s. The architecture chip turns that list into page tables once, at
//! boot, and then proves with a coverage check, by walking the tables it built,
//! that every byte of every region is mapped with exactly the intended
//! attributes. Nothing is mapped afterwards.
//!
//! Permissions are a closed set ([`Permissions`]): there is no way to ask for a
//! range that is both writable and executable.
//!
//! ```
//! use hyp::memory::{MemoryType, Permissions, Region};
//! let uart = Region::new("uart0", 0x1600_0000, 0x1000, MemoryType::Device, Permissions::ReadWrite);
//! assert_eq!(uart.end(), 0x1600_1000);
//! assert!(uart.contains(0x1600_0ffc));
//! ```

use core::fmt;

/// The size of the smallest unit the hypervisor maps: a 4 KiB page.
pub const PAGE_SIZE: u32 = 0x1000;

/// What kind of memory sits behind a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// RAM: cacheable (write-back, read/write-allocate), inner shareable.
    Normal,
    /// Device registers: not cacheable, not gathered, not reordered.
    Device,
}

/// What the hypervisor may do with a range. Writable ranges are never
/// executable (W^X), by construction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permissions {
    /// Code: read and execute, never written.
    ReadExecute,
    /// Constants: read only, execute-never.
    ReadOnly,
    /// Data, stacks, devices, guest RAM: read and write, execute-never.
    ReadWrite,
}

impl Permissions {
    /// A short `rwx` string for memory maps, e.g. `r-x`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Permissions::ReadExecute => "r-x",
            Permissions::ReadOnly => "r--",
            Permissions::ReadWrite => "rw-",
        }
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            MemoryType::Normal => "normal",
            MemoryType::Device => "device",
        })
    }
}

impl fmt::Display for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One range of the hypervisor's address space, identity mapped
/// (virtual address == physical address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    /// A short name used in memory maps and error messages (`text`, `uart0`).
    pub name: &'static str,
    /// First byte of the range.
    pub start: u32,
    /// Length in bytes.
    pub size: u32,
    /// Memory type.
    pub memory: MemoryType,
    /// Access permissions.
    pub permissions: Permissions,
}

impl Region {
    /// Describes a range. Nothing is checked here; the table builder rejects
    /// empty, misaligned, wrapping and overlapping regions.
    pub const fn new(
        name: &'static str,
        start: u32,
        size: u32,
        memory: MemoryType,
        permissions: Permissions,
    ) -> Region {
        Region {
            name,
            start,
            size,
            memory,
            permissions,
        }
    }

    /// One past the last byte, as a `u64` so that a range ending at 4 GiB is
    /// representable.
    pub const fn end(&self) -> u64 {
        self.start as u64 + self.size as u64
    }

    /// Whether `address` lies inside the range.
    pub const fn contains(&self, address: u32) -> bool {
        address >= self.start && (address as u64) < self.end()
    }

    /// Whether the two ranges share at least one byte.
    pub const fn overlaps(&self, other: &Region) -> bool {
        (self.start as u64) < other.end() && (other.start as u64) < self.end()
    }
}

impl fmt::Display for Region {
    /// One line of a memory map:
    /// `0x00010000-0x00017fff   32 KiB  normal r-x  text`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#010x}-{:#010x} {:>9}  {:<6} {}  {}",
            self.start,
            self.end().saturating_sub(1),
            Size(self.size as u64),
            self.memory,
            self.permissions,
            self.name
        )
    }
}

/// A byte count printed in the largest binary unit that divides it exactly
/// (`4 KiB`, `1 GiB`, `4100 B`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
        // Format into a small stack buffer so that width and alignment apply
        // to the whole "N unit" string.
        let mut buffer = StackString::<24>::new();
        let mut written = false;
        for (unit, name) in units {
            if self.0 != 0 && self.0.is_multiple_of(unit) {
                let _ = fmt::write(&mut buffer, format_args!("{} {}", self.0 / unit, name));
                written = true;
                break;
            }
        }
        if !written {
            let _ = fmt::write(&mut buffer, format_args!("{} B", self.0));
        }
        f.pad(buffer.as_str())
    }
}

/// A fixed-capacity string used to format short values without a heap.
struct StackString<const N: usize> {
    bytes: [u8; N],
    len: usize,
}

impl<const N: usize> StackString<N> {
    const fn new() -> Self {
        StackString {
            bytes: [0; N],
            len: 0,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever appended, so the prefix is valid UTF-8.
        core::str::from_utf8(&self.bytes[..self.len]).unwrap_or("?")
    }
}

impl<const N: usize> fmt::Write for StackString<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        if end > N {
            return Err(fmt::Error);
        }
        self.bytes[self.len..end].copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Why a region could not be mapped. A rejected request leaves the tables
/// exactly as they were.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// The region has size 0.
    Empty { region: Region },
    /// Start or size is not a multiple of [`PAGE_SIZE`].
    Misaligned { region: Region },
    /// The region runs past the end of the 32-bit address space.
    Wraps { region: Region },
    /// The region shares bytes with one mapped earlier.
    Overlaps { region: Region, existing: Region },
    /// The static table pool is exhausted.
    OutOfTables { region: Region },
    /// More regions than the builder can remember for its overlap checks.
    TooManyRegions { region: Region },
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapError::Empty { region } => {
                write!(
                    f,
                    "region '{}' at {:#010x} is empty",
                    region.name, region.start
                )
            }
            MapError::Misaligned { region } => write!(
                f,
                "region '{}' {:#010x}+{:#x} is not aligned to {} KiB pages",
                region.name,
                region.start,
                region.size,
                PAGE_SIZE / 1024
            ),
            MapError::Wraps { region } => write!(
                f,
                "region '{}' {:#010x}+{:#x} runs past the 4 GiB address space",
                region.name, region.start, region.size
            ),
            MapError::Overlaps { region, existing } => write!(
                f,
                "region '{}' {:#010x}-{:#010x} overlaps '{}' {:#010x}-{:#010x}",
                region.name,
                region.start,
                region.end() - 1,
                existing.name,
                existing.start,
                existing.end() - 1
            ),
            MapError::OutOfTables { region } => write!(
                f,
                "no free translation table left to map region '{}' {:#010x}+{:#x}",
                region.name, region.start, region.size
            ),
            MapError::TooManyRegions { region } => write!(
                f,
                "too many regions: cannot record '{}' {:#010x}+{:#x}",
                region.name, region.start, region.size
            ),
        }
    }
}

/// What the coverage check expects of a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expectation {
    /// Every byte mapped, identity, with the region's type and permissions.
    Mapped(Region),
    /// Not a single byte mapped (a stack guard page, say). The region's type
    /// and permissions are ignored.
    Unmapped(Region),
}

impl Expectation {
    /// The range the expectation is about.
    pub const fn region(&self) -> &Region {
        match self {
            Expectation::Mapped(region) | Expectation::Unmapped(region) => region,
        }
    }
}

/// What the coverage check found wrong in a range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CoverageProblem {
    /// Not mapped at all.
    Unmapped,
    /// Mapped to another physical address.
    WrongAddress { found: u64 },
    /// Mapped with another memory type.
    WrongMemoryType { found: MemoryType },
    /// Mapped with a memory attribute index Capvisor never programs.
    UnknownMemoryType { attribute_index: u8 },
    /// Mapped with other permissions (`None`: an encoding Capvisor never
    /// writes, e.g. writable and executable).
    WrongPermissions { found: Option<Permissions> },
    /// Mapped although it must not be.
    UnexpectedlyMapped,
}

/// The first range (of one region) that the tables do not cover as intended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoverageError {
    /// The region (from the expectation list) that is not covered.
    pub region: Region,
    /// First byte of the bad range.
    pub start: u32,
    /// Last byte of the bad range (inclusive).
    pub last: u32,
    /// What is wrong with it.
    pub problem: CoverageProblem,
}

impl fmt::Display for CoverageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:#010x}-{:#010x} of region '{}' ({} {}) ",
            self.start, self.last, self.region.name, self.region.memory, self.region.permissions
        )?;
        match self.problem {
            CoverageProblem::Unmapped => write!(f, "is not mapped"),
            CoverageProblem::WrongAddress { found } => {
                write!(f, "is mapped to physical address {:#x}", found)
            }
            CoverageProblem::WrongMemoryType { found } => {
                write!(f, "is mapped as {} memory", found)
            }
            CoverageProblem::UnknownMemoryType { attribute_index } => {
                write!(
                    f,
                    "is mapped with unknown attribute index {}",
                    attribute_index
                )
            }
            CoverageProblem::WrongPermissions { found: Some(p) } => {
                write!(f, "is mapped {}", p)
            }
            CoverageProblem::WrongPermissions { found: None } => {
                write!(f, "is mapped with permissions Capvisor never uses")
            }
            CoverageProblem::UnexpectedlyMapped => write!(f, "is mapped but must not be"),
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn region_bounds() {
        let r = Region::new(
            "r",
            0xffff_f000,
            0x1000,
            MemoryType::Normal,
            Permissions::ReadOnly,
        );
        assert_eq!(r.end(), 0x1_0000_0000);
        assert!(r.contains(0xffff_ffff));
        assert!(!r.contains(0xffff_efff));
        let s = Region::new(
            "s",
            0xffff_e000,
            0x1000,
            MemoryType::Normal,
            Permissions::ReadOnly,
        );
        assert!(!r.overlaps(&s));
        let t = Region::new(
            "t",
            0xffff_e000,
            0x1001,
            MemoryType::Normal,
            Permissions::ReadOnly,
        );
        assert!(r.overlaps(&t) && t.overlaps(&r));
    }

    #[test]
    fn sizes_print_in_exact_units() {
        assert_eq!(format!("{}", Size(4096)), "4 KiB");
        assert_eq!(format!("{}", Size(1 << 30)), "1 GiB");
        assert_eq!(format!("{}", Size(3 << 20)), "3 MiB");
        assert_eq!(format!("{}", Size(4100)), "4100 B");
        assert_eq!(format!("{:>7}", Size(4096)), "  4 KiB");
    }

    #[test]
    fn region_line() {
        let r = Region::new(
            "uart0",
            0x1600_0000,
            0x1000,
            MemoryType::Device,
            Permissions::ReadWrite,
        );
        assert_eq!(
            format!("{}", r),
            "0x16000000-0x16000fff     4 KiB  device rw-  uart0"
        );
    }

    #[test]
    fn coverage_error_names_the_range() {
        let r = Region::new(
            "rodata",
            0x2_0000,
            0x3000,
            MemoryType::Normal,
            Permissions::ReadOnly,
        );
        let e = CoverageError {
            region: r,
            start: 0x2_1000,
            last: 0x2_1fff,
            problem: CoverageProblem::Unmapped,
        };
        assert_eq!(
            format!("{}", e),
            "0x00021000-0x00021fff of region 'rodata' (normal r--) is not mapped"
        );
    }
}
