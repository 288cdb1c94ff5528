// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capvisor on QEMU's Integrator/CP with a Cortex-A15.
//!
//! The CPU enters `_start` (in the `armv7a` chip crate) in Hyp mode; it
//! installs the vectors, sets up the stack, clears `.bss` and calls
//! [`capvisor_main`] here, which brings the hypervisor up in one readable
//! sequence, with the shared steps from `components`:
//!
//! 1. quiet the devices (mask every PIC line, stop the timers), start the
//!    console and print the banner;
//! 2. refuse to go on unless the CPU is in Hyp mode with the Virtualization
//!    Extensions;
//! 3. build the Hyp stage-1 tables for the image and this board's
//!    [`memory_map`], prove their coverage, print the map, and turn on the
//!    MMU, caches and WXN; nothing is mapped after this point; read the
//!    board's PL031 once for the wall clock every VM's clock counts from;
//! 4. prepare the CPU for guests, check the VM table, create the VMs with
//!    the *software* interrupt backend (this board has no GIC: the guest's
//!    whole GIC is emulated and its IRQ input is HCR.VI; its timer's
//!    interrupt is not wired, so the hypervisor evaluates the guest timer
//!    and sets its alarm, counter/timer 1, for the deadline), and run them
//!    with the board's platform (PIC, alarm, UART0 input) until all have
//!    stopped; report and stop QEMU with the exit status.
//!
//! Test-only features (see `Cargo.toml`) make the image misbehave on purpose
//! so the integration tests can check the fatal paths.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod memory_map;

extern crate alloc;

use armv7a::generic_timer::Counter;
use armv7a::hyp_tables::HypTables;
use armv7a::vcpu::HcrVirtualIrq;
use capsules::virtual_gic::SoftwareBackend;
use components::guests::{self, leak, GuestPool, InterruptWiring, VmCapabilities};
use components::platform::{BoardPlatform, Lines, PlatformShared};
use components::{board_disk, boot, io, log};
use hyp::hil::block::BlockDevice;
use hyp::kernel::NoKick;
use hyp::utilities::TakeOnce;
use integrator_cp::pic::{lines, Pic};
use integrator_cp::timer::{OneShotAlarm, Timer, TIMER1_HZ, TIMER_STRIDE};
use integrator_cp::{PIC_BASE, RTC_BASE, TIMERS_BASE, UART0_BASE};
use pl181::registers::Mmio;
use pl181::Pl181;

/// The reference clock of the Integrator/CP UARTs.
const UART_CLOCK_HZ: u32 = 14_745_600;
/// Console baud rate.
const CONSOLE_BAUD: u32 = 115_200;
/// An address in the second GiB, which the Hyp map leaves empty (for the
/// `test-fault-unmapped` hook).
const UNMAPPED: usize = 0x7000_0000;

/// Level-2 and level-3 tables available to the Hyp map: one level-2 table
/// (the low GiB) and one level-3 table per 2 MiB range holding pages
/// (image, timers, PIC, RTC, UART0) are needed: 1 and 5.
const L2_TABLES: usize = 2;
const L3_TABLES: usize = 8;

/// The heap for boot-time allocations (the objects every VM borrows, the
/// guests' device trees); nothing is allocated once the VMs run.
#[global_allocator]
static HEAP: hyp::utilities::BumpAllocator<{ 256 * 1024 }> = hyp::utilities::BumpAllocator::new();

/// The Hyp stage-1 tables, in `.bss`; written once during boot.
static HYP_TABLES: TakeOnce<HypTables<L2_TABLES, L3_TABLES>> = TakeOnce::new(HypTables::new());

/// Called by the arch crate's `_start` in Hyp mode, MMU off, on the boot
/// stack, with `.bss` cleared.
#[no_mangle]
pub extern "C" fn capvisor_main() -> ! {
    // SAFETY: the PIC and timer blocks are identity mapped (physical
    // addressing now, the Hyp map's "pic" and "timers" regions later) and
    // only used here during boot and by the platform below.
    let pic = unsafe { Pic::new(PIC_BASE) };
    pic.disable_all();
    for index in 0..3 {
        // SAFETY: as above, for timer `index`'s block.
        unsafe { Timer::new(TIMERS_BASE + index * TIMER_STRIDE) }.stop();
    }
    // SAFETY: UART0 is in the Hyp map ("uart0") and only the console uses it.
    unsafe { io::set_console(UART0_BASE, UART_CLOCK_HZ, CONSOLE_BAUD) };
    boot::banner("integrator-cp (QEMU Integrator/CP)");
    boot::check_cpu();
    // SAFETY: taken here only, on the boot CPU before any other CPU runs.
    let tables = unsafe { HYP_TABLES.take() }
        .unwrap_or_else(|| io::refuse_boot(format_args!("the Hyp tables were already taken")));
    boot::build_and_enable_hyp_map(tables, &memory_map::REGIONS);
    // SAFETY: the RTC is in the Hyp map ("rtc", read-only) and only read,
    // here, once.
    let rtc = unsafe { pl031::Pl031::new(RTC_BASE) };
    let wall_clock = boot::read_wall_clock(Some(&rtc), &Counter, "the board's PL031");
    // SAFETY: once, in Hyp mode, before any guest runs.
    unsafe { armv7a::world_switch::init_virtualization() };
    boot::run_test_hooks(UNMAPPED);
    if let Err(image_end) = memory_map::check_guest_ram_alias() {
        io::refuse_boot(format_args!(
            "the guest RAM pool at {:#010x} overlaps the alias of the hypervisor image (ends at {:#x})",
            memory_map::GUEST_RAM.start,
            image_end
        ));
    }

    // The board disk, which the VMs' slices of it are served from (by
    // polling: the PL181 moves data by PIO).
    let board_disk = board_disk();

    // Which physical interrupt goes where is this board's to decide.
    let routing = hyp::create_capability!(hyp::capabilities::InterruptRoutingCapability);
    let system = guests::prepare(GuestPool {
        pool: &memory_map::GUEST_RAM,
        staging: &memory_map::GUEST_IMAGES,
        devices: components::devices::DEVICES,
        wall_clock,
        cpus: 1,
        board_disk,
        kicker: &NoKick,
    });
    // No GIC: the software backend, HCR.VI as the vCPU's IRQ input, and
    // both GIC windows emulated (a one-CPU board: every VM has one vCPU).
    let wiring = |vm: usize, _vcpu: usize| {
        let gic = &system.gics[vm];
        InterruptWiring {
            backend: leak(SoftwareBackend::new(gic, &HcrVirtualIrq)),
            distributor: leak(gic.distributor()),
            cpu_interface: Some(leak(gic.cpu_interface())),
            passthrough: &[],
        }
    };
    // The privileged steps of building VMs, this board's to take.
    let stage2 = hyp::create_capability!(hyp::capabilities::Stage2MappingCapability);
    let vcpu = hyp::create_capability!(hyp::capabilities::VcpuCreationCapability);
    let vms = guests::create_vms(
        &system,
        &wiring,
        &VmCapabilities {
            stage2: &stage2,
            vcpu: &vcpu,
        },
        &NoKick,
        1,
    );

    let counter: &'static Counter = leak(Counter);
    // SAFETY: counter/timer 1 is in the Hyp map ("timers") and owned by the
    // platform's alarm from here on.
    let timer = unsafe { Timer::new(TIMERS_BASE + TIMER_STRIDE) };
    let shared = leak(PlatformShared {
        counter,
        alarm: leak(OneShotAlarm::new(timer, TIMER1_HZ, counter)),
        controller: leak(pic),
        lines: Lines {
            alarm: lines::TIMER1,
            console: lines::UART0,
            forwarded: &[],
            kick: None,
            // The PL181 is polled.
            disk: None,
        },
        mux: system.mux,
        vms: vms.vms,
        consoles: vms.consoles.clone(),
        board_disk: system.board_disk,
    });
    let platform = leak(
        BoardPlatform::new(
            &routing,
            shared,
            Some(io::console()),
            vms.backends[0].clone(),
        )
        .with_disks(vms.disks[0].clone()),
    );
    log!("interrupts: no GIC; guest GICs emulated in software (HCR.VI), guest timers evaluated by the hypervisor");
    guests::run_and_report(&system, vms, alloc::vec![&*platform])
}

/// Brings up the board disk, the SD card behind the PL181, and prints it
/// (or that there is none: QEMU without `-drive if=sd`). With the
/// `test-board-disk` feature, runs its self-check.
fn board_disk() -> Option<&'static dyn BlockDevice<'static>> {
    // SAFETY: the PL181 is in the Hyp map ("mmci") and only this driver,
    // created once here, uses it.
    let disk = leak(Pl181::new(unsafe { Mmio::new(pl181::BASE) }));
    let card = match disk.init() {
        Ok(card) => card,
        Err(pl181::InitError::NoCard) => {
            board_disk::announce(None, "PL181 SD card");
            return None;
        }
        Err(error) => {
            log!("board disk: the PL181's SD card is not usable: {}", error);
            return None;
        }
    };
    let disk: &'static dyn BlockDevice<'static> = disk;
    board_disk::announce(
        Some(disk),
        match card.addressing {
            pl181::Addressing::Bytes => "PL181 SD card (SDSC, byte addresses)",
            pl181::Addressing::Blocks => "PL181 SD card (SDHC/SDXC, block addresses)",
        },
    );
    #[cfg(feature = "test-board-disk")]
    board_disk::self_check(disk);
    Some(disk)
}
