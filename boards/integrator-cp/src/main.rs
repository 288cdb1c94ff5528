//! Capvisor on QEMU's Integrator/CP with a Cortex-A15.
//!
//! The CPU enters `_start` (in the `armv7a` chip crate) in Hyp mode; it
//! installs the vectors, sets up the stack, clears `.bss` and calls
//! [`capvisor_main`] here, which brings the hypervisor up in one readable
//! sequence:
//!
//! 1. quiet the devices (mask every PIC line, stop the timers), start the
//!    console and print the banner;
//! 2. refuse to go on unless the CPU is in Hyp mode with the Virtualization
//!    Extensions;
//! 3. build the Hyp stage-1 tables for every region of [`memory_map`], prove
//!    their coverage, print the map, and turn on the MMU, caches and WXN;
//!    nothing is mapped after this point;
//! 4. prepare the CPU for guests (stage-2 format, FP access, guest TLB),
//!    create the VMs of the board's table ([`vms`]), run them until all
//!    have stopped, report, and stop QEMU with the exit status
//!    ([`guests`]).
//!
//! Test-only features (see `Cargo.toml`) make the image misbehave on purpose
//! so the integration tests can check the fatal paths.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;

mod guests;
mod io;
mod memory_map;
mod platform;
mod vms;

use armv7a::hyp_tables::{HypTables, HMAIR0, HMAIR1, HTCR};
use armv7a::mmu::HypTranslation;
use hyp::memory::Size;
use hyp::utilities::TakeOnce;
use integrator_cp::pic::Pic;
use integrator_cp::timer::{Timer, TIMER_STRIDE};
use integrator_cp::{PIC_BASE, TIMERS_BASE};

/// The reference clock of the Integrator/CP UARTs.
const UART_CLOCK_HZ: u32 = 14_745_600;
/// Console baud rate.
const CONSOLE_BAUD: u32 = 115_200;

/// Level-2 and level-3 tables available to the Hyp map. The map on this
/// board needs one level-2 table (the low GiB) and one level-3 table per
/// 2 MiB range holding pages (image, timers, PIC, UART0): 1 and 4. The
/// spare capacity is there for boards that copy this one.
const L2_TABLES: usize = 2;
const L3_TABLES: usize = 8;

/// The heap for boot-time allocations (guests' device trees); nothing is
/// allocated once the VMs run.
#[global_allocator]
static HEAP: hyp::utilities::BumpAllocator<{ 64 * 1024 }> = hyp::utilities::BumpAllocator::new();

/// The Hyp stage-1 tables, in `.bss`; written once during boot.
static HYP_TABLES: TakeOnce<HypTables<L2_TABLES, L3_TABLES>> = TakeOnce::new(HypTables::new());

/// Called by the arch crate's `_start` in Hyp mode, MMU off, on the boot
/// stack, with `.bss` cleared.
#[no_mangle]
pub extern "C" fn capvisor_main() -> ! {
    quiesce_devices();
    io::console().init(UART_CLOCK_HZ, CONSOLE_BAUD);
    io::console().write_str_crlf("\n");
    log!(
        "Capvisor {}: a type-1 hypervisor for ARMv7-A in Hyp mode",
        env!("CARGO_PKG_VERSION")
    );
    log!("board: integrator-cp (QEMU Integrator/CP)");
    check_cpu();
    build_and_enable_hyp_map();
    // SAFETY: once, in Hyp mode, before any guest runs.
    unsafe { armv7a::world_switch::init_virtualization() };
    run_test_hooks();
    guests::run()
}

/// Masks every interrupt line and stops the timers, so nothing fires before
/// the hypervisor is ready for it.
fn quiesce_devices() {
    // SAFETY: the PIC and timer blocks are identity mapped (before the MMU is
    // on, physical addressing; after, the Hyp map's "pic" and "timers"
    // regions), and these drivers are only used here during boot.
    let pic = unsafe { Pic::new(PIC_BASE) };
    pic.disable_all();
    for index in 0..3 {
        // SAFETY: as above, for timer `index`'s block.
        let timer = unsafe { Timer::new(TIMERS_BASE + index * TIMER_STRIDE) };
        timer.stop();
    }
}

/// Refuses to go on unless the CPU can run Capvisor.
fn check_cpu() {
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

/// Builds the Hyp tables, checks them, prints the map and enables the MMU.
fn build_and_enable_hyp_map() {
    let tables = HYP_TABLES
        .take()
        .unwrap_or_else(|| io::refuse_boot(format_args!("the Hyp tables were already taken")));
    #[allow(unused_mut)]
    let (mut regions, count) = memory_map::regions();
    #[cfg(feature = "test-uncovered-layout")]
    memory_map::break_layout(&mut regions[..count]);
    for region in &regions[..count] {
        if let Err(error) = tables.map(region) {
            io::refuse_boot(format_args!("cannot build the Hyp map: {}", error));
        }
    }
    let (mut expectations, expected) = memory_map::expectations();
    if let Err(error) = tables.check_coverage(&expectations[..expected]) {
        io::refuse_boot(format_args!("Hyp map coverage check failed: {}", error));
    }
    expectations[..expected].sort_unstable_by_key(|expectation| expectation.region().start);

    log!("Hyp memory map (identity, LPAE stage 1, fixed after boot):");
    log!(
        "  {:<21} {:>9}  {:<6} {}  {}",
        "range",
        "size",
        "type",
        "acc",
        "name"
    );
    for expectation in &expectations[..expected] {
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
    // and the console, and `tables` is never written again (the reference is
    // dropped at the end of this function and HYP_TABLES cannot be taken
    // twice).
    unsafe { armv7a::mmu::enable_hyp_mmu(&translation) };
    log!(
        "Hyp MMU on: caches on, WXN on, HTTBR {:#010x}",
        translation.table_base
    );
}

/// Sets PMCCFILTR.NSH (bit 27) so the cycle counter also counts in Hyp
/// mode: the trap paths are what is being measured.
#[cfg(feature = "bench")]
pub fn count_hyp_cycles() {
    // SAFETY: PMCCFILTR only filters what the cycle counter counts.
    unsafe {
        core::arch::asm!("mcr p15, 0, {}, c14, c15, 7", in(reg) 1u32 << 27, options(nomem, nostack))
    };
}

/// Deliberate failures, compiled in only for the integration tests.
fn run_test_hooks() {
    #[cfg(feature = "test-fault-unmapped")]
    {
        /// An address in the second GiB, which the Hyp map leaves empty.
        const UNMAPPED: usize = 0x7000_0000;
        log!("test: reading unmapped address {:#010x}", UNMAPPED);
        // SAFETY: not safe at all: this read must fault, and the fatal path
        // must report it. Test builds only.
        let value = unsafe { core::ptr::read_volatile(UNMAPPED as *const u32) };
        log!("test: read {:#x}: the fault was NOT taken", value);
    }
    #[cfg(feature = "test-panic")]
    {
        panic!("test panic requested by the test-panic feature");
    }
}
