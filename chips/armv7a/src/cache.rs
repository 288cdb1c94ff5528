// SPDX-License-Identifier: MIT OR Apache-2.0
//! Cache maintenance: whole-cache invalidation by set/way at bring-up, and
//! cleaning guest RAM to the point of coherency before a VM starts.
//!
//! Before the Hyp MMU and caches are turned on, the data and unified caches
//! may hold stale lines left by reset or by a boot loader. This walks every
//! cache level the CPU reports in CLIDR and invalidates each line by set/way,
//! with the geometry read from CCSIDR, so it works on any ARMv7-A core
//! without build-time cache sizes. QEMU does not model caches, so on QEMU this
//! only costs a few thousand instructions; on hardware it is required.

/// The DCISW operand for one line: level in bits 3:1, set shifted by
/// log2(line length), way in the top bits. Pure, so it is tested on the host.
pub const fn set_way_operand(
    level: u32,
    set: u32,
    way: u32,
    log2_line: u32,
    log2_ways: u32,
) -> u32 {
    let way_part = if log2_ways == 0 {
        0
    } else {
        way << (32 - log2_ways)
    };
    way_part | (set << log2_line) | (level << 1)
}

/// log2 rounded up (0 for 1).
pub const fn log2_ceil(value: u32) -> u32 {
    if value <= 1 {
        0
    } else {
        32 - (value - 1).leading_zeros()
    }
}

/// Invalidates (without cleaning) every data and unified cache line up to
/// the level of coherency, then the instruction cache: the boot CPU's
/// bring-up.
///
/// # Safety
/// Dirty lines are discarded: call only while the data cache is off and
/// before anything that matters was written through it (at boot, before
/// any other CPU runs).
#[cfg(target_arch = "arm")]
pub unsafe fn invalidate_all_caches() {
    use aarch32_cpu::register::{Clidr, SysRegRead};
    // LoC: CLIDR bits 26:24.
    let clidr = <Clidr as SysRegRead>::read_raw();
    // SAFETY: as this function's.
    unsafe { invalidate_levels(clidr, (clidr >> 24) & 0x7) };
}

/// Invalidates this CPU's own data caches (the levels below the level of
/// unification inner shareable, which no other CPU shares) and its
/// instruction cache: a secondary CPU's bring-up, which must not discard
/// what the running CPUs keep in a shared cache.
///
/// # Safety
/// As [`invalidate_all_caches`], for this CPU's private caches.
#[cfg(target_arch = "arm")]
pub unsafe fn invalidate_local_caches() {
    use aarch32_cpu::register::{Clidr, SysRegRead};
    // LoUIS: CLIDR bits 23:21.
    let clidr = <Clidr as SysRegRead>::read_raw();
    // SAFETY: as this function's.
    unsafe { invalidate_levels(clidr, (clidr >> 21) & 0x7) };
}

/// Invalidates the data and unified caches of levels `0..levels` by
/// set/way, then the instruction cache.
#[cfg(target_arch = "arm")]
unsafe fn invalidate_levels(clidr: u32, levels: u32) {
    use aarch32_cpu::register::{Ccsidr, Csselr, Dcisw, Iciallu, SysRegRead, SysRegWrite};
    // Ctype<n>: 3 bits per level from bit 0.
    for level in 0..levels {
        let cache_type = (clidr >> (level * 3)) & 0x7;
        // 2 = data only, 3 = separate I and D, 4 = unified. 0/1: none/I only.
        if cache_type < 2 {
            continue;
        }
        // SAFETY: selecting a cache level for CCSIDR has no other effect.
        unsafe { <Csselr as SysRegWrite>::write_raw(level << 1) };
        aarch32_cpu::asm::isb();
        let ccsidr = <Ccsidr as SysRegRead>::read_raw();
        let log2_line = (ccsidr & 0x7) + 4;
        let ways = ((ccsidr >> 3) & 0x3ff) + 1;
        let sets = ((ccsidr >> 13) & 0x7fff) + 1;
        let log2_ways = log2_ceil(ways);
        for set in 0..sets {
            for way in 0..ways {
                let operand = set_way_operand(level, set, way, log2_line, log2_ways);
                // SAFETY: the caller guarantees no data in the cache matters.
                unsafe { <Dcisw as SysRegWrite>::write_raw(operand) };
            }
        }
    }
    aarch32_cpu::asm::dsb();
    Iciallu::write();
    aarch32_cpu::asm::dsb();
    aarch32_cpu::asm::isb();
}

/// The smallest data cache line of any level (CTR.DminLine, in bytes).
#[cfg(target_arch = "arm")]
pub fn dcache_line_bytes() -> usize {
    let ctr: u32;
    // SAFETY: reading CTR has no side effects.
    unsafe { core::arch::asm!("mrc p15, 0, {}, c0, c0, 1", out(reg) ctr, options(nomem, nostack)) };
    4 << ((ctr >> 16) & 0xf)
}

/// Cleans the data cache lines covering `start..start + length` to the
/// point of coherency (DCCMVAC), so that an observer with caches off (a
/// guest before it turns its MMU on) sees what the hypervisor wrote.
#[cfg(target_arch = "arm")]
pub fn clean_to_poc(start: usize, length: usize) {
    let line = dcache_line_bytes();
    let end = start.saturating_add(length);
    let mut address = start & !(line - 1);
    aarch32_cpu::asm::dsb();
    while address < end {
        // SAFETY: cleaning writes dirty lines back; it changes no data.
        unsafe {
            aarch32_cpu::register::Dccmvac::write(aarch32_cpu::register::Dccmvac(address as u32))
        };
        address += line;
    }
    aarch32_cpu::asm::dsb();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log2_rounds_up() {
        assert_eq!(log2_ceil(1), 0);
        assert_eq!(log2_ceil(2), 1);
        assert_eq!(log2_ceil(3), 2);
        assert_eq!(log2_ceil(4), 2);
        assert_eq!(log2_ceil(16), 4);
    }

    #[test]
    fn set_way_operand_for_a_two_way_cache() {
        // Cortex-A15 L1D: 2 ways, 64-byte lines, 256 sets.
        assert_eq!(set_way_operand(0, 0, 1, 6, 1), 0x8000_0000);
        assert_eq!(set_way_operand(0, 255, 0, 6, 1), 255 << 6);
        // L2 (level index 1), 16 ways: way 15 in bits 31:28.
        assert_eq!(set_way_operand(1, 3, 15, 6, 4), 0xf000_0000 | (3 << 6) | 2);
    }

    #[test]
    fn direct_mapped_cache_has_no_way_bits() {
        assert_eq!(set_way_operand(0, 5, 0, 5, 0), 5 << 5);
    }
}
