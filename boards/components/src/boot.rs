// SPDX-License-Identifier: MIT OR Apache-2.0
//! The boot sequence every board shares: the CPU check, the Hyp map with
//! its coverage proof, test hooks.
//!
//! A board's `capvisor_main` names its console ([`crate::io::set_console`]),
//! prints the banner ([`banner`]), quiets its devices, and calls these in
//! order, then creates and runs its VMs ([`crate::guests`]).
//!
//! A board with several CPUs starts the others with
//! [`start_secondary_cpus`] once its Hyp map is on. Each enters the
//! board's `capvisor_secondary_main(cpu)` on its own stack, MMU off; it
//! calls [`secondary_bring_up`] (the same Hyp tables, the same
//! virtualization settings), sets up its own banked devices (a GIC's CPU
//! interface), and says it is up with [`secondary_online`].
//!
//! A board with a real-time clock reads it once, after its Hyp map is on,
//! with [`read_wall_clock`]: the calendar time every VM's clock counts
//! from.

use crate::{io, log, memory_map};
use armv7a::hyp_tables::{HypTables, HMAIR0, HMAIR1, HTCR};
use armv7a::mmu::HypTranslation;
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use hyp::hil::time::{BootWallClock, Clock, UnsetWallClock, UtcDateTime, WallClock};
use hyp::memory::{Region, Size};

/// The Hyp tables' base (HTTBR) the boot CPU turned on, for the secondary
/// CPUs; 0 until then. Cleaned to the point of coherency after it is
/// written: a secondary reads it with its caches off.
static HYP_TABLE_BASE: AtomicU32 = AtomicU32::new(0);

/// Per CPU: set by the CPU once it is up (its MMU, virtualization settings
/// and banked devices), read by the boot CPU waiting for it.
static ONLINE: [AtomicBool; armv7a::cpu::MAX_CPUS] =
    [const { AtomicBool::new(false) }; armv7a::cpu::MAX_CPUS];

/// How long the boot CPU waits for a started CPU to say it is up.
const BRING_UP_TIMEOUT_US: u64 = 1_000_000;

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
    let mut expectations = memory_map::expectations(&memory_map::plan(board_regions));
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

    let translation = translation(tables.root_table_address() as u32);
    // SAFETY: the coverage check just proved that the tables identity-map
    // the whole image (this code, every CPU's stacks, data and the tables
    // themselves) and the console; the board hands over tables it never
    // writes again (taken once from its static).
    unsafe { armv7a::mmu::enable_hyp_mmu(&translation) };
    HYP_TABLE_BASE.store(translation.table_base as u32, Ordering::Release);
    armv7a::cache::clean_to_poc((&raw const HYP_TABLE_BASE) as usize, 4);
    log!(
        "Hyp MMU on: caches on, WXN on, HTTBR {:#010x}",
        translation.table_base
    );
}

/// The Hyp translation settings for tables at `base`.
fn translation(base: u32) -> HypTranslation {
    HypTranslation {
        table_base: base as u64,
        htcr: HTCR,
        hmair0: HMAIR0,
        hmair1: HMAIR1,
    }
}

/// Starts CPUs 1 to `present - 1` (at most as many as the image has
/// stacks for) by PSCI CPU_ON, one at a time, each at MPIDR affinity
/// `Aff0 = cpu`, and waits for each to say it is up. Refuses the boot,
/// naming the CPU, when CPU_ON fails or a CPU is not up within a second.
/// Returns how many CPUs run.
pub fn start_secondary_cpus(present: usize) -> usize {
    let count = present.min(memory_map::cpus());
    if present > count {
        log!(
            "{} CPUs present; this image has stacks for {}: the others stay off",
            present,
            count
        );
    }
    let counter = armv7a::generic_timer::Counter;
    for (cpu, online) in ONLINE.iter().enumerate().take(count).skip(1) {
        // SAFETY: `cpu` is below the image's stack slots and not running
        // (each is started once, here); it runs `capvisor_secondary_main`.
        if let Err(error) = unsafe { armv7a::psci::start_secondary(cpu, cpu as u32) } {
            io::refuse_boot(format_args!("CPU {}: PSCI CPU_ON failed: {}", cpu, error));
        }
        let deadline = counter.now() + counter.ticks_from_us(BRING_UP_TIMEOUT_US);
        while !online.load(Ordering::Acquire) {
            if counter.now() > deadline {
                io::refuse_boot(format_args!(
                    "CPU {} was started (PSCI CPU_ON) but did not come up within {} ms",
                    cpu,
                    BRING_UP_TIMEOUT_US / 1000
                ));
            }
            core::hint::spin_loop();
        }
    }
    if count > 1 {
        log!("{} CPUs online", count);
    }
    count
}

/// A secondary CPU's first steps, from the board's
/// `capvisor_secondary_main`: the Hyp MMU on the boot CPU's tables, the
/// same virtualization settings. The board then sets up the CPU's banked
/// devices and calls [`secondary_online`].
pub fn secondary_bring_up(cpu: usize) {
    // Read with the caches off: the boot CPU cleaned it to memory.
    let base = HYP_TABLE_BASE.load(Ordering::Acquire);
    if base == 0 || armv7a::cpu::current() != cpu {
        // Nothing can be printed safely yet (no MMU); the boot CPU's
        // timeout names this CPU.
        loop {
            armv7a::cpu::wait_for_interrupt();
        }
    }
    // SAFETY: the boot CPU's tables, proved to map the whole image with
    // every CPU's stacks, written with its caches off and never changed.
    unsafe { armv7a::mmu::enable_hyp_mmu_secondary(&translation(base)) };
    // SAFETY: in Hyp mode, before any guest runs on this CPU.
    unsafe { armv7a::world_switch::init_virtualization() };
}

/// Says CPU `cpu` is up: the boot CPU waiting in
/// [`start_secondary_cpus`] goes on.
pub fn secondary_online(cpu: usize) {
    log!("CPU {}: online, {}", cpu, armv7a::cpu::cpu_id());
    ONLINE[cpu].store(true, Ordering::Release);
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

/// The deliberate failure of a secondary CPU, compiled in only for the
/// integration tests: CPU 1 reads `unmapped`, which the Hyp map leaves
/// empty; the report must name CPU 1.
pub fn run_secondary_test_hooks(cpu: usize, unmapped: usize) {
    let _ = (cpu, unmapped);
    #[cfg(feature = "test-fault-secondary")]
    if cpu == 1 {
        log!("test: CPU 1 reads unmapped address {:#010x}", unmapped);
        // SAFETY: not safe at all: this read must fault, and the fatal path
        // must report it. Test builds only.
        let value = unsafe { core::ptr::read_volatile(unmapped as *const u32) };
        log!("test: read {:#x}: the fault was NOT taken", value);
    }
}

/// The board's wall clock, read once from its PL031 (`rtc`, in the Hyp
/// map; `None` for a board without one) and paired with `counter` read at
/// the same moment ([`BootWallClock::from_reading`]); `source` names the
/// clock in the boot log, which prints the date read. A board without an
/// RTC, an RTC that is not a running PL031, or one that reads 0 (never
/// set) keeps the epoch: guests' clocks start at 1970-01-01, and the log
/// says why.
pub fn read_wall_clock(
    rtc: Option<&pl031::Pl031>,
    counter: &dyn Clock,
    source: &str,
) -> &'static dyn WallClock {
    let Some(rtc) = rtc else {
        log!("wall clock: this board has no RTC; guests' clocks start at 1970-01-01");
        return &UnsetWallClock;
    };
    let reading = rtc.read_seconds();
    let count = counter.now();
    match reading {
        Err(error) => {
            log!(
                "wall clock: {} unusable ({}); guests' clocks start at 1970-01-01",
                source,
                error
            );
            &UnsetWallClock
        }
        Ok(0) => {
            log!(
                "wall clock: {} reads 0 (never set); guests' clocks start at 1970-01-01",
                source
            );
            &UnsetWallClock
        }
        Ok(seconds) => {
            let wall = BootWallClock::from_reading(u64::from(seconds), count, counter.frequency());
            log!(
                "wall clock: {} from {} ({} s since 1970, counter at {:#x})",
                UtcDateTime::from_unix_seconds(u64::from(seconds)),
                source,
                seconds,
                count
            );
            crate::leak(wall)
        }
    }
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
