// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot sequence every board shares: the CPU check, the Hyp map with
//! its coverage proof, test hooks.
//!
//! A board's `capvisor_main` names its console ([`crate::io::set_console`]),
//! prints the banner ([`banner`]), quiets its devices, and calls these in
//! order, then creates and runs its VMs ([`crate::guests`]).

use crate::{io, log, memory_map};
use armv7a::hyp_tables::{HypTables, HMAIR0, HMAIR1, HTCR};
use armv7a::mmu::HypTranslation;
use hyp::memory::{Region, Size};

/// Prints the banner: Capvisor's version, the board, the CPU.
pub fn banner(board: &str) {
    log!(
        "Capvisor {}: a type-1 hypervisor for ARMv7-A in Hyp mode",
        env!("CARGO_PKG_VERSION")
    );
    log!("board: {}", board);
}

/// Refuses to go on unless the CPU can run Capvisor.
pub fn check_cpu() {
    let cpu = armv7a::cpu::cpu_id();
    log!("cpu: {}", cpu);
    let mode = armv7a::cpu::current_mode();
    if mode != armv7a::cpu::MODE_HYP {
        io::refuse_boot(format_args!(
            "the CPU is in mode {:#04x}, not Hyp (0x1a): start Capvisor in Hyp mode",
            mode
        ));
    }
    let id_pfr1 = armv7a::cpu::id_pfr1();
    if !armv7a::cpu::has_virtualization_extensions(id_pfr1) {
        io::refuse_boot(format_args!(
            "ID_PFR1 {:#010x} reports no Virtualization Extensions",
            id_pfr1
        ));
    }
}

/// Builds the Hyp tables for the image and `board_regions` (the board's
/// devices, guest RAM pool and staging area), checks them, prints the map
/// and enables the MMU; refuses the boot on any problem.
pub fn build_and_enable_hyp_map<const L2: usize, const L3: usize>(
    tables: &mut HypTables<L2, L3>,
    board_regions: &[Region],
) {
    #[allow(unused_mut)]
    let mut regions = memory_map::plan(board_regions);
    #[cfg(feature = "test-uncovered-layout")]
    memory_map::break_layout(&mut regions);
    for region in &regions {
        if let Err(error) = tables.map(region) {
            io::refuse_boot(format_args!("cannot build the Hyp map: {}", error));
        }
    }
    let mut expectations =
        memory_map::expectations(&memory_map::plan(board_regions), memory_map::stack_guard());
    let expected = expectations.len();
    if let Err(error) = tables.check_coverage(&expectations) {
        io::refuse_boot(format_args!("Hyp map coverage check failed: {}", error));
    }
    expectations.sort_unstable_by_key(|expectation| expectation.region().start);

    log!("Hyp memory map (identity, LPAE stage 1, fixed after boot):");
    log!(
        "  {:<21} {:>9}  {:<6} {}  {}",
        "range",
        "size",
        "type",
        "acc",
        "name"
    );
    for expectation in &expectations {
        match expectation {
            hyp::memory::Expectation::Mapped(region) => log!("  {}", region),
            hyp::memory::Expectation::Unmapped(region) => log!(
                "  {:#010x}-{:#010x} {:>9}  {:<6} {}  {} (unmapped)",
                region.start,
                region.end() - 1,
                Size(region.size as u64),
                "-",
                "---",
                region.name
            ),
        }
    }
    let (l2, l3) = tables.tables_used();
    let stats = tables.mapping_stats();
    log!(
        "Hyp tables: 1 L1 + {} L2 + {} L3; {} x 1 GiB blocks, {} x 2 MiB blocks, {} x 4 KiB pages",
        l2,
        l3,
        stats.gib_blocks,
        stats.mib2_blocks,
        stats.pages
    );
    log!(
        "coverage check passed: {} ranges, every byte as intended",
        expected
    );

    let translation = HypTranslation {
        table_base: tables.root_table_address(),
        htcr: HTCR,
        hmair0: HMAIR0,
        hmair1: HMAIR1,
    };
    // SAFETY: the coverage check just proved that the tables identity-map
    // the whole image (this code, the stacks, data and the tables themselves)
    // and the console; the board hands over tables it never writes again
    // (taken once from its static).
    unsafe { armv7a::mmu::enable_hyp_mmu(&translation) };
    log!(
        "Hyp MMU on: caches on, WXN on, HTTBR {:#010x}",
        translation.table_base
    );
}

/// Sets PMCCFILTR.NSH (bit 27) so the cycle counter also counts in Hyp
/// mode: the trap paths are what is being measured.
#[cfg(feature = "bench")]
pub(crate) fn count_hyp_cycles() {
    // SAFETY: PMCCFILTR only filters what the cycle counter counts.
    unsafe {
        core::arch::asm!("mcr p15, 0, {}, c14, c15, 7", in(reg) 1u32 << 27, options(nomem, nostack))
    };
}

/// Deliberate failures, compiled in only for the integration tests;
/// `unmapped` is an address the board's Hyp map leaves empty.
pub fn run_test_hooks(unmapped: usize) {
    let _ = unmapped;
    #[cfg(feature = "test-fault-unmapped")]
    {
        log!("test: reading unmapped address {:#010x}", unmapped);
        // SAFETY: not safe at all: this read must fault, and the fatal path
        // must report it. Test builds only.
        let value = unsafe { core::ptr::read_volatile(unmapped as *const u32) };
        log!("test: read {:#x}: the fault was NOT taken", value);
    }
    #[cfg(feature = "test-panic")]
    {
        panic!("test panic requested by the test-panic feature");
    }
}
