// SPDX-License-Identifier: MIT OR Apache-2.0
//! Capvisor on QEMU virt (`-M virt,virtualization=on,gic-version=2 -cpu
//! cortex-a15 -m 1024`): a GICv2 with the virtualization extensions and the
//! generic timer wired, as on every Cortex-A15/A7 SoC with a GIC-400.
//!
//! [`capvisor_main`] brings the hypervisor up in one readable sequence,
//! with the shared steps from `components`:
//!
//! 1. start the console (PL011 at 0x0900_0000), print the banner, and read
//!    the device tree QEMU left at the start of RAM: refuse to boot, naming
//!    the difference, unless the machine is the one this board is built
//!    for (RAM, GIC windows and interrupts, PL011, timer, PSCI);
//! 2. refuse to go on unless the CPU is in Hyp mode with the Virtualization
//!    Extensions;
//! 3. build the Hyp stage-1 tables for the image and this board's
//!    [`memory_map`], prove their coverage, turn on the MMU; nothing is
//!    mapped after this point; read the PL031 (if the device tree lists
//!    it) once for the wall clock every VM's clock counts from;
//! 4. bring up the GIC (split priority drop and deactivation), check the VM
//!    table and create the VMs with the *GICv2 virtualization* backend:
//!    each guest's CPU interface window is GICV, mapped by stage 2; its
//!    distributor is emulated; the guest timer's interrupt (PPI 11) is
//!    taken physically, masked and injected until the guest ends it; the
//!    hypervisor's alarm is the Hyp physical timer (CNTHP,
//!    PPI 10); run them until all have stopped, report, and stop QEMU.
//!
//! Before 4 it brings up the board disk, QEMU's virtio-blk device behind
//! one of the 32 virtio-mmio transports, if QEMU has one ([`board_disk`]),
//! and hands it to the VMs that have slices of it: its completion
//! interrupt (SPI 16 + slot) targets the CPUs of those VMs' vCPUs 0; the
//! one that takes it posts each completion to its slice and kicks the
//! CPU of that slice's VM's vCPU 0.
#![no_std]
#![no_main]
#![deny(unsafe_op_in_unsafe_fn)]

mod memory_map;

extern crate alloc;

use armv7a::generic_timer::{Counter, HypTimerAlarm};
use armv7a::hyp_tables::HypTables;
use armv7a::stage2::{GuestAccess, GuestMapping};
use capsules::virtual_gic::{self, GicV2Backend};
use components::guests::{self, leak, GuestPool, InterruptWiring, VmCapabilities};
use components::platform::{BoardPlatform, Lines, PlatformShared};
use components::{board_disk, boot, io, log};
use gicv2::{Gic, HypInterface};
use hyp::config::DeviceClaim;
use hyp::hil::block::BlockDevice;
use hyp::hil::list_registers::HostInterrupts;
use hyp::kernel::CpuKick;
use hyp::memory::{MemoryType, Size};
use hyp::utilities::TakeOnce;
use qemu_virt::device_tree::{self, Expected};
use qemu_virt::disk;

/// Console baud rate (QEMU ignores it; a real PL011 does not).
const CONSOLE_BAUD: u32 = 115_200;
/// An address the Hyp map leaves empty (for the `test-fault-unmapped`
/// hook).
const UNMAPPED: usize = 0x2000_0000;
/// The RAM this board needs (`-m 1024`): the pool and the staging area.
const MIN_RAM: u64 = 1 << 30;

/// Level-2 tables: the first GiB (devices) and the second (RAM); level-3
/// tables for the 2 MiB ranges holding pages: the GIC, the UART, the
/// image (up to 2).
const L2_TABLES: usize = 2;
const L3_TABLES: usize = 8;

/// The heap for boot-time allocations (the objects every VM borrows, the
/// guests' device trees); nothing is allocated once the VMs run.
#[global_allocator]
static HEAP: hyp::utilities::BumpAllocator<{ 256 * 1024 }> = hyp::utilities::BumpAllocator::new();

/// The Hyp stage-1 tables, in `.bss`; written once during boot.
static HYP_TABLES: TakeOnce<HypTables<L2_TABLES, L3_TABLES>> = TakeOnce::new(HypTables::new());

/// The GIC: the distributor is shared; each CPU sees its own CPU interface
/// (and its own banked SGIs and PPIs) at the same addresses.
// SAFETY: the distributor and CPU interface blocks are in the Hyp map
// ("gicd", "gicc") and driven only through this driver.
static GIC: Gic = unsafe { Gic::new(qemu_virt::GICD_BASE, qemu_virt::GICC_BASE) };

/// The guest's GIC CPU interface window, mapped onto the GIC's virtual CPU
/// interface (GICV) in the stage 2 of every VM that claims it.
static GICV_WINDOW: [(DeviceClaim, GuestMapping); 1] = [(
    DeviceClaim::of(&virtual_gic::CPU_INTERFACE),
    GuestMapping {
        name: "gicv",
        ipa: virtual_gic::CPU_INTERFACE.base,
        physical: qemu_virt::GICV_BASE as u64,
        size: virtual_gic::CPU_INTERFACE.size,
        memory: MemoryType::Device,
        access: GuestAccess::ReadWrite,
    },
)];

/// Called by the arch crate's `_start` in Hyp mode, MMU off, on the boot
/// stack, with `.bss` cleared.
#[no_mangle]
pub extern "C" fn capvisor_main() -> ! {
    // SAFETY: the PL011 is in the Hyp map ("uart0") and only the console
    // uses it.
    unsafe {
        io::set_console(
            qemu_virt::UART0_BASE,
            qemu_virt::UART_CLOCK_HZ,
            CONSOLE_BAUD,
        )
    };
    boot::banner("qemu-virt (QEMU virt, GICv2 with virtualization)");
    let (machine, rtc_listed) = check_machine();
    boot::check_cpu();
    // SAFETY: taken here only, on the boot CPU before any other CPU runs.
    let tables = unsafe { HYP_TABLES.take() }
        .unwrap_or_else(|| io::refuse_boot(format_args!("the Hyp tables were already taken")));
    boot::build_and_enable_hyp_map(tables, &memory_map::REGIONS);
    // SAFETY: the RTC is in the Hyp map ("rtc", read-only) and only read,
    // here, once (and only if the device tree says it is there).
    let rtc = unsafe { pl031::Pl031::new(qemu_virt::RTC_BASE) };
    let wall_clock =
        boot::read_wall_clock(rtc_listed.then_some(&rtc), &Counter, "the board's PL031");
    // SAFETY: once, in Hyp mode, before any guest runs.
    unsafe { armv7a::world_switch::init_virtualization() };
    boot::run_test_hooks(UNMAPPED);

    let gic: &'static Gic = &GIC;
    // SAFETY: the GICH block is in the Hyp map ("gich") and driven only
    // through this driver (each CPU sees its own list registers there).
    let gich: &'static HypInterface = unsafe { leak(HypInterface::new(qemu_virt::GICH_BASE)) };
    gic.init(true);
    HypTimerAlarm.set_control_off();
    log!(
        "GIC: {} interrupt lines, {} list registers; guest CPU interfaces are GICV at {:#010x}",
        gic.distributor.lines(),
        gich.list_registers(),
        qemu_virt::GICV_BASE
    );
    let online = boot::start_secondary_cpus(machine.cpus as usize);
    // The board disk, which the VMs' slices of it are served from, and
    // its completion interrupt.
    let (board_disk, disk_interrupt) = match board_disk() {
        Some((disk, interrupt)) => (Some(disk), Some(interrupt)),
        None => (None, None),
    };

    // Which physical interrupt goes where is this board's to decide.
    let routing = hyp::create_capability!(hyp::capabilities::InterruptRoutingCapability);
    let system = guests::prepare(GuestPool {
        pool: &memory_map::GUEST_RAM,
        staging: &memory_map::GUEST_IMAGES,
        devices: components::devices::DEVICES,
        wall_clock,
        cpus: online,
        board_disk,
        kicker: &GicKick,
    });
    // The host GIC's interrupts each backend takes (checked against the
    // device tree by `check_machine`).
    let host_interrupts = HostInterrupts {
        maintenance: qemu_virt::MAINTENANCE_INTERRUPT,
        virtual_timer: qemu_virt::VIRTUAL_TIMER_INTERRUPT,
    };
    // Each vCPU: its own GICv2 backend (its list registers, its view of
    // its VM's distributor), the VM's CPU interface window onto GICV.
    let wiring = |vm: usize, vcpu: usize| {
        let backend: &'static GicV2Backend<'static> = leak(GicV2Backend::new(
            &system.gics[vm],
            vcpu,
            gich,
            gic,
            host_interrupts,
            &routing,
        ));
        InterruptWiring {
            backend,
            distributor: leak(backend.distributor()),
            cpu_interface: None,
            passthrough: &GICV_WINDOW,
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
        &GicKick,
        online,
    );

    // The board disk's completion goes to the CPUs that deliver to VMs'
    // slices (the CPUs of their vCPUs 0): whichever takes it first serves
    // it, so it is served while any of them runs.
    if let Some(line) = disk_interrupt {
        gic.distributor
            .set_target(line, system.board_disk_cpus() as u8);
    }
    let shared = leak(PlatformShared {
        counter: leak(Counter),
        alarm: &HypTimerAlarm,
        controller: gic,
        lines: Lines {
            alarm: qemu_virt::HYP_TIMER_INTERRUPT,
            console: qemu_virt::UART0_INTERRUPT,
            forwarded: &[
                qemu_virt::MAINTENANCE_INTERRUPT,
                qemu_virt::VIRTUAL_TIMER_INTERRUPT,
            ],
            kick: Some(KICK_SGI),
            // QEMU's virtio-blk completes by interrupt (SPI 16 + slot).
            disk: disk_interrupt,
        },
        mux: system.mux,
        vms: vms.vms,
        consoles: vms.consoles.clone(),
        board_disk: system.board_disk,
    });
    // The console CPU takes console input (the UART's interrupt targets CPU 0).
    let platforms = (0..online)
        .map(|cpu| {
            &*leak(
                BoardPlatform::new(
                    &routing,
                    shared,
                    (cpu == guests::CONSOLE_CPU).then(io::console),
                    vms.backends[cpu].clone(),
                )
                .with_disks(vms.disks[cpu].clone()),
            )
        })
        .collect();
    guests::run_and_report(&system, vms, platforms)
}

/// The SGI one CPU sends another to make it look at its vCPUs again.
const KICK_SGI: u32 = 1;

/// Kicks another CPU with [`KICK_SGI`].
struct GicKick;

impl CpuKick for GicKick {
    fn kick(&self, cpu: usize) {
        if cpu != armv7a::cpu::current() && cpu < armv7a::cpu::MAX_CPUS {
            // The SGI must follow what the kicking CPU wrote for the
            // kicked one to see.
            armv7a::cpu::data_barrier();
            GIC.distributor.send_sgi(KICK_SGI, 1 << cpu);
        }
    }
}

/// Reads the device tree QEMU left at the start of RAM and refuses to boot
/// unless the machine is the one this board is built for. Also says
/// whether it lists the PL031 where the Hyp map has it (a tree listing one
/// elsewhere is refused: the map is fixed).
fn check_machine() -> (device_tree::VirtMachine, bool) {
    // SAFETY: the MMU is off (physical addressing) and RAM from 0x4000_0000
    // holds at least the device tree's megabyte below the image.
    let blob = unsafe { device_tree::blob_at(qemu_virt::DTB_ADDRESS, qemu_virt::DTB_MAX_SIZE) }
        .unwrap_or_else(|error| io::refuse_boot(format_args!("{}", error)));
    let machine =
        device_tree::parse(blob).unwrap_or_else(|error| io::refuse_boot(format_args!("{}", error)));
    if let Err(mismatch) = device_tree::check(&machine, &Expected::qemu_virt(MIN_RAM)) {
        io::refuse_boot(format_args!("{}", mismatch));
    }
    log!(
        "machine: {} RAM at {:#010x}, {} CPU(s), GICv2 at {:#010x} with virtualization, PSCI by {}",
        Size(machine.ram_size),
        machine.ram_base,
        machine.cpus,
        machine.gic.distributor.0,
        machine.psci_method
    );
    let rtc = match device_tree::rtc_window(blob) {
        Ok(None) => false,
        Ok(Some((base, _))) if base == qemu_virt::RTC_BASE as u64 => true,
        Ok(Some((base, _))) => io::refuse_boot(format_args!(
            "device tree: the PL031 is at {:#x}, the board maps it at {:#010x}",
            base,
            qemu_virt::RTC_BASE
        )),
        Err(error) => io::refuse_boot(format_args!("{}", error)),
    };
    (machine, rtc)
}

/// Where each secondary CPU goes once the boot CPU started it
/// (`boot::start_secondary_cpus`), on its own stack, MMU off: the Hyp MMU
/// on the shared tables, its banked GIC registers, its alarm off; then it
/// runs the vCPUs the boot CPU hands it.
#[no_mangle]
pub extern "C" fn capvisor_secondary_main(cpu: usize) -> ! {
    boot::secondary_bring_up(cpu);
    GIC.init_secondary(true);
    HypTimerAlarm.set_control_off();
    boot::secondary_online(cpu);
    boot::run_secondary_test_hooks(cpu, UNMAPPED);
    guests::run_secondary(cpu)
}

/// Finds QEMU's virtio-blk device among the virtio-mmio transports, brings
/// it up and prints it (or that there is none); with its interrupt. With
/// the `test-board-disk` feature, runs its self-check.
fn board_disk() -> Option<(&'static dyn BlockDevice<'static>, u32)> {
    // SAFETY: the transports' window is in the Hyp map ("virtio-mmio");
    // reading MagicValue and DeviceID has no side effect.
    let ids = disk::probe(|slot| unsafe { disk::read_ids(slot) });
    let Some(slot) = disk::find_block_device(&ids) else {
        board_disk::announce(None, "virtio-blk");
        return None;
    };
    // SAFETY: the window stays mapped for the whole run and this slot is
    // driven only by the disk created here, once.
    let (disk, version) = match unsafe { disk::open(slot) } {
        Ok(opened) => opened,
        Err(error) => {
            log!(
                "board disk: the virtio-blk device in slot {} is not usable: {}",
                slot,
                error
            );
            return None;
        }
    };
    let disk: &'static dyn BlockDevice<'static> = leak(disk);
    board_disk::announce(
        Some(disk),
        format_args!(
            "virtio-blk (virtio-mmio slot {} at {:#010x}, version {}, SPI {})",
            slot,
            disk::transport_base(slot),
            version,
            disk::transport_interrupt(slot) - 32
        ),
    );
    #[cfg(feature = "test-board-disk")]
    board_disk::self_check(disk);
    Some((disk, disk::transport_interrupt(slot)))
}
