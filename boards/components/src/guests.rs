// SPDX-License-Identifier: MIT OR Apache-2.0
//! Creating the VMs of the table and running them to the end, on any board.
//!
//! DESIGN.md's boot steps 3 to 5, in three calls the board makes with its
//! own pieces in between: [`prepare`] (steps 1 and 3 below, up to the
//! devices), [`create_vms`] (step 2, given each VM's interrupt backend and
//! GIC windows), and [`run_and_report`] (the run and step 4, given the
//! board's platform):
//! 1. resolve each image's staging address (`images.txt`) and check the
//!    whole table with `hyp::config::validate`, reading every image's
//!    zImage header; any problem refuses the boot before a VM exists;
//! 2. for each VM: stage-2 tables mapping its RAM and nothing else, its
//!    VMID, its RAM zeroed with the images copied in and cleaned to the
//!    point of coherency, its vCPU at the image's entry with the Linux boot
//!    registers, its capsules (virtual PL011, PSCI, Capvisor's service)
//!    and its fault policy;
//! 3. the console multiplexer, each VM's virtual UART, virtual GIC and
//!    hypervisor service, the board's interrupt backends and platform
//!    (clock, alarm, interrupt controller, console input) and a round robin
//!    scheduler; then `hyp::kernel::Kernel::run` until every VM has
//!    stopped;
//! 4. one status line per VM, and the exit status: 0 only if every VM
//!    powered off without reporting a failure.

use crate::vms::{image_address, Policy, VmSpec, SLOTS, SLOT_SIZE, VMS};
use crate::{io, log};
use alloc::vec::Vec;
use armv7a::cp15_context::Cp15Context;
use armv7a::generic_timer::Counter;
use armv7a::stage2::{vttbr, GuestAccess, GuestMapping, Stage2Tables};
use armv7a::vcpu::ArmVcpu;
use armv7a::world_switch::GuestContext;
use capsules::console_mux::{ConsoleMux, ConsolePort};
use capsules::fault_policies::{RestartThenStop, StopFaultPolicy};
use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use capsules::virtual_gic::VirtualGic;
use capsules::virtual_uart::VirtualUart;
use hyp::config::ImageKind;
use hyp::config::{
    validate, BoardOffer, DeviceClaim, ImageConfig, ImageProblem, VmConfig, MAX_VMS,
};
use hyp::device_tree::{guest_device_tree, GuestTree};
use hyp::dispatch::{HypercallDriver, MmioDevice};
use hyp::exit::ExitCode;
use hyp::fault_policy::VmFaultPolicy;
use hyp::hil::time::Clock;
use hyp::image::{check_image, parse_raw, parse_zimage, HEADER_BYTES, RAW_HEADER_BYTES};
use hyp::interrupts::InterruptBackend;
use hyp::kernel::{GuestMemory, Kernel, Platform, RunOutcome, Vm, VmState};
use hyp::memory::{MemoryType, Region, Size};
use hyp::scheduler::RoundRobin;
use hyp::utilities::TakeOnce;

/// VMIDs available: 8 bits, 0 reserved for "no VM".
const VMIDS: usize = 255;
/// The most exits the VMs may take (none in practice: a stuck test is
/// caught by its timeout, and an interactive system runs for ever).
const EXIT_BUDGET: u32 = u32::MAX;
/// The scheduler's time slice.
const TIME_SLICE_US: u64 = 10_000;

const _: () = assert!(
    COUNT <= MAX_VMS,
    "the board's VM table has more VMs than Capvisor supports (hyp::config::MAX_VMS)"
);

/// Each VM's stage-2 tables: RAM in 2 MiB blocks needs one level-2 table,
/// a device window in the first GiB (a GIC's virtual CPU interface)
/// another, and a level-3 table for its pages.
static STAGE2: [TakeOnce<Stage2Tables<2, 1>>; MAX_VMS] =
    [const { TakeOnce::new(Stage2Tables::new()) }; MAX_VMS];

/// The board's first staging slot (0 until [`prepare`]).
static STAGING: core::sync::atomic::AtomicU32 = core::sync::atomic::AtomicU32::new(0);

/// The image's header bytes, read where the loader put it (refusing
/// addresses outside the staging area: the hypervisor must never touch
/// memory it has not mapped).
fn header_bytes(address: u32) -> Result<&'static [u8; HEADER_BYTES], ImageProblem> {
    let staging = STAGING.load(core::sync::atomic::Ordering::Relaxed);
    let staging_end = staging as u64 + (SLOTS * SLOT_SIZE) as u64;
    if staging == 0 || address < staging || address as u64 + HEADER_BYTES as u64 > staging_end {
        return Err(ImageProblem::OutsideStaging);
    }
    // SAFETY: the staging area is mapped read-only in the Hyp map (the
    // 'guest-images' region) and nothing writes it while the hypervisor
    // runs; the range was checked above.
    Ok(unsafe { &*(address as usize as *const [u8; HEADER_BYTES]) })
}

/// Where an image's bytes start and how many there are to copy.
fn payload(vm: &VmConfig, image: &ImageConfig) -> Result<(u32, u32), ImageProblem> {
    let header = header_bytes(image.host_address)?;
    let (start, size) = match image.kind {
        ImageKind::Kernel => {
            let kernel = parse_zimage(header)?;
            check_image(&kernel, image.name, vm.ram_ipa + image.load_offset)?;
            (image.host_address, kernel.size)
        }
        ImageKind::Raw => (
            image.host_address + RAW_HEADER_BYTES as u32,
            parse_raw(header)?,
        ),
    };
    if size > SLOT_SIZE - (start - image.host_address) {
        return Err(ImageProblem::Malformed);
    }
    Ok((start, size))
}

/// The probe `validate` calls: the image's size from its header, after
/// checking it is the image the table names, linked for where it goes.
fn probe(vm: &VmConfig, image: &ImageConfig) -> Result<u32, ImageProblem> {
    payload(vm, image).map(|(_, size)| size)
}

/// Where a VM's device tree goes: 2 MiB below the end of its RAM.
const DEVICE_TREE_FROM_END: u32 = 0x0020_0000;

/// A VM's RAM and the images that go in it, and the device tree the
/// hypervisor wrote for it (only for VMs with boot arguments: a kernel
/// that reads one).
struct VmRam {
    config: VmConfig,
    device_tree: Option<Vec<u8>>,
}

impl VmRam {
    /// The device tree's offset in RAM.
    fn device_tree_offset(&self) -> u32 {
        self.config.ram_size - DEVICE_TREE_FROM_END
    }
}

impl GuestMemory for VmRam {
    fn load(&self) {
        let ram = self.config.ram_host as usize;
        let size = self.config.ram_size as usize;
        // SAFETY: `validate` proved this slice lies inside the guest RAM
        // pool (mapped read-write in the Hyp map) and overlaps no other
        // VM's; its VM is not running while it is reloaded.
        unsafe { core::ptr::write_bytes(ram as *mut u8, 0, size) };
        for image in self.config.images() {
            // The header was checked by `validate`; it cannot have changed.
            let Ok((start, size)) = payload(&self.config, image) else {
                continue;
            };
            // SAFETY: source inside the staging area, destination inside
            // this VM's RAM (validate checked size and offset), disjoint.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    start as usize as *const u8,
                    (ram + image.load_offset as usize) as *mut u8,
                    size as usize,
                )
            };
        }
        if let Some(tree) = &self.device_tree {
            // SAFETY: inside this VM's RAM (the tree's size was checked
            // against DEVICE_TREE_FROM_END when it was written).
            unsafe {
                core::ptr::copy_nonoverlapping(
                    tree.as_ptr(),
                    (ram + self.device_tree_offset() as usize) as *mut u8,
                    tree.len(),
                )
            };
        }
        armv7a::cache::clean_to_poc(ram, size);
    }
}

/// The device tree for a VM with boot arguments (a kernel that reads one);
/// refuses the boot if it cannot be written or does not fit.
fn write_device_tree(config: &VmConfig) -> Option<Vec<u8>> {
    if config.bootargs.is_empty() || config.device_tree.is_some() {
        return None;
    }
    let initrd = config.initrd.and_then(|initrd| {
        let (_, size) = payload(config, &initrd).ok()?;
        let start = config.ram_ipa + initrd.load_offset;
        Some((start, start + size))
    });
    let tree = guest_device_tree(&GuestTree {
        ram_base: config.ram_ipa,
        ram_size: config.ram_size,
        bootargs: config.bootargs,
        initrd,
    })
    .unwrap_or_else(|error| {
        io::refuse_boot(format_args!(
            "VM '{}': cannot write its device tree: {}",
            config.name, error
        ))
    });
    if tree.len() as u32 > DEVICE_TREE_FROM_END || config.ram_size < 2 * DEVICE_TREE_FROM_END {
        io::refuse_boot(format_args!(
            "VM '{}': no room for its {}-byte device tree",
            config.name,
            tree.len()
        ));
    }
    Some(tree)
}

/// The configuration with each image's staging address filled in and its
/// RAM placed in the board's pool (tables give RAM as an offset in it).
fn resolve(spec: &VmSpec, memory: &GuestPool) -> VmConfig {
    let mut config = spec.config;
    config.ram_host += u64::from(memory.pool.start);
    let resolve_image = |image: &mut ImageConfig| match image_address(memory.staging, image.name) {
        Some(address) => image.host_address = address,
        None => io::refuse_boot(format_args!(
            "VM '{}': image '{}' has no staging slot in images.txt",
            config.name, image.name
        )),
    };
    resolve_image(&mut config.kernel);
    if let Some(initrd) = config.initrd.as_mut() {
        resolve_image(initrd);
    }
    if let Some(tree) = config.device_tree.as_mut() {
        resolve_image(tree);
    }
    config
}

/// Whether `config` claims the device called `name` at `base`, `size`.
pub fn claims_window(config: &VmConfig, name: &str, base: u64, size: u64) -> bool {
    config.devices.iter().any(|claim| {
        claim.name == name && u64::from(claim.ipa) == base && u64::from(claim.size) == size
    })
}

/// Whether `config` claims `device`, at the device's own window.
fn claims(config: &VmConfig, device: &dyn MmioDevice) -> bool {
    claims_window(config, device.name(), device.base(), device.size())
}

/// Builds VM `index`'s stage 2 (its RAM, and `extra` windows such as a
/// GIC's virtual CPU interface) and vCPU (VMID `index + 1`).
fn create_vcpu(
    index: usize,
    config: &VmConfig,
    extra: &[GuestMapping],
    cp15_at_reset: Cp15Context,
) -> ArmVcpu {
    let tables = STAGE2[index]
        .take()
        .unwrap_or_else(|| io::refuse_boot(format_args!("stage-2 tables taken twice")));
    let ram = GuestMapping {
        name: "ram",
        ipa: config.ram_ipa,
        physical: config.ram_host,
        size: config.ram_size,
        memory: MemoryType::Normal,
        access: GuestAccess::ReadWriteExecute,
    };
    for mapping in core::iter::once(&ram).chain(extra) {
        if let Err(error) = tables.map(mapping) {
            io::refuse_boot(format_args!("VM '{}': {}", config.name, error));
        }
    }
    let vmid = index as u8 + 1;
    let entry = config.ram_ipa + config.kernel.load_offset;
    let mut boot = GuestContext::boot(entry);
    // The Linux boot protocol: r0 = 0, r1 = ~0 (no machine number, a
    // device tree instead), r2 = the device tree's address.
    boot.r[1] = u32::MAX;
    boot.r[2] = match config.device_tree {
        Some(tree) => config.ram_ipa + tree.load_offset,
        None if !config.bootargs.is_empty() => {
            config.ram_ipa + config.ram_size - DEVICE_TREE_FROM_END
        }
        None => 0,
    };
    ArmVcpu::new(
        boot,
        cp15_at_reset,
        vttbr(vmid, tables.root_table_address()),
    )
}

/// Moves `value` to the boot heap for the rest of the run (Tock's
/// `static_init!`): objects created once at boot that the VMs, capsules
/// and the platform borrow for ever.
pub fn leak<T>(value: T) -> &'static mut T {
    alloc::boxed::Box::leak(alloc::boxed::Box::new(value))
}

/// Where a board keeps guests: the RAM pool VMs are carved from and the
/// staging area QEMU's loader fills (slots of `images.txt`).
#[derive(Clone, Copy, Debug)]
pub struct GuestPool {
    /// The pool (mapped read-write in the Hyp map).
    pub pool: &'static Region,
    /// The first staging slot (the area is mapped read-only).
    pub staging: u32,
    /// The devices the board offers VMs, at their windows.
    pub devices: &'static [DeviceClaim],
}

/// The number of VMs in the table.
pub const COUNT: usize = VMS.len();

/// What every VM has, created by [`prepare`] before the board adds its
/// interrupt backends: the checked configurations and the capsules that do
/// not depend on the board.
pub struct System {
    /// Each VM's configuration, resolved and checked.
    pub configs: [VmConfig; COUNT],
    /// Each VM's RAM and its images.
    memories: &'static [VmRam; COUNT],
    /// The console multiplexer.
    pub mux: &'static ConsoleMux<'static, COUNT>,
    /// Each VM's virtual PL011.
    pub uarts: &'static [VirtualUart<'static>; COUNT],
    /// Each VM's virtual GIC (its distributor state).
    pub gics: &'static [VirtualGic; COUNT],
    /// Each VM's Capvisor service (its reported status).
    pub services: &'static [HypervisorService<'static>; COUNT],
}

/// Checks the table against the board's pool, devices and staging area,
/// writes the guests' device trees and creates the capsules every VM has;
/// any problem refuses the boot before a VM exists.
pub fn prepare(memory: GuestPool) -> System {
    #[cfg(feature = "bench")]
    crate::boot::count_hyp_cycles();
    STAGING.store(memory.staging, core::sync::atomic::Ordering::Relaxed);
    let configs: [VmConfig; COUNT] = core::array::from_fn(|index| resolve(&VMS[index], &memory));
    let offer = BoardOffer {
        pool: memory.pool,
        vmids: VMIDS,
        devices: memory.devices,
    };
    if let Err(error) = validate(&configs, &offer, probe) {
        io::refuse_boot(format_args!("bad VM table: {}", error));
    }
    log!("VM table checked: {} VMs", COUNT);
    let memories: &'static [VmRam; COUNT] = leak(core::array::from_fn(|index| VmRam {
        config: configs[index],
        device_tree: write_device_tree(&configs[index]),
    }));
    // The console: one physical UART shared through the multiplexer; each
    // VM writes through its own port.
    let console: &'static pl011::Pl011 = leak(io::console());
    let mux: &'static ConsoleMux<'static, COUNT> = leak(ConsoleMux::new(
        console,
        core::array::from_fn(|index| configs[index].name),
    ));
    let ports: &'static [ConsolePort<'static, 'static, COUNT>; COUNT] =
        leak(core::array::from_fn(|index| mux.port(index)));
    let uarts = leak(core::array::from_fn(|index| {
        VirtualUart::new(&ports[index])
    }));
    let gics = leak(core::array::from_fn(|_| VirtualGic::new()));
    let services = leak(core::array::from_fn(|index| {
        HypervisorService::new(index as u32 + 1, configs[index].name, &ports[index])
    }));
    System {
        configs,
        memories,
        mux,
        uarts,
        gics,
        services,
    }
}

impl core::fmt::Debug for System {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("System").field("vms", &COUNT).finish()
    }
}

/// One VM's interrupt wiring, from the board: its backend, the device that
/// answers its distributor window, the device that answers its CPU
/// interface window if it is emulated, and stage-2 windows onto hardware
/// (the GIC's virtual CPU interface) if not.
#[derive(Clone, Copy)]
pub struct InterruptWiring {
    /// The VM's interrupt backend.
    pub backend: &'static dyn InterruptBackend,
    /// Its GICD window.
    pub distributor: &'static dyn MmioDevice,
    /// Its GICC window, when trapped and emulated.
    pub cpu_interface: Option<&'static dyn MmioDevice>,
    /// Hardware windows its stage 2 maps (each only if the VM claims the
    /// device named as the mapping).
    pub passthrough: &'static [(DeviceClaim, GuestMapping)],
}

impl core::fmt::Debug for InterruptWiring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InterruptWiring")
            .field("emulated_cpu_interface", &self.cpu_interface.is_some())
            .field("passthrough", &self.passthrough.len())
            .finish()
    }
}

/// Creates the VMs: RAM loaded, stage 2, vCPU at its entry, capsules
/// (virtual PL011, virtual GIC windows, PSCI, Capvisor's service) and
/// fault policy, with each VM's interrupt wiring from the board.
pub fn create_vms(
    system: &System,
    wiring: [InterruptWiring; COUNT],
) -> &'static mut [Vm<'static, ArmVcpu>; COUNT] {
    let counter = Counter;
    let cp15_at_reset = Cp15Context::save();
    let psci: &'static Psci = leak(Psci::new());
    let stop_policy: &'static StopFaultPolicy = leak(StopFaultPolicy);
    leak(core::array::from_fn(|index| {
        let config = &system.configs[index];
        // Each VM gets the devices it claims (the table was checked: each
        // is one of the board's, at its own window).
        let devices: &'static heapless::Vec<&'static dyn MmioDevice, 3> = leak(
            [
                Some(&system.uarts[index] as &dyn MmioDevice),
                Some(wiring[index].distributor),
                wiring[index].cpu_interface,
            ]
            .into_iter()
            .flatten()
            .filter(|device| claims(config, *device))
            .collect(),
        );
        let mut extra: heapless::Vec<GuestMapping, 4> = heapless::Vec::new();
        for (claim, mapping) in wiring[index].passthrough {
            if claims_window(config, claim.name, claim.ipa.into(), claim.size.into()) {
                let _ = extra.push(*mapping);
            }
        }
        let services: &'static [&'static dyn HypercallDriver; 2] =
            leak([psci as &dyn HypercallDriver, &system.services[index]]);
        system.memories[index].load();
        let mut vcpu = create_vcpu(index, config, &extra, cp15_at_reset);
        // The VM's virtual counter starts at 0 now and runs with the
        // physical one from then on (see capsules::virtual_timer).
        vcpu.virtual_offset = counter.now();
        let policy: &'static dyn VmFaultPolicy = match VMS[index].policy {
            Policy::Stop => stop_policy,
            Policy::Restart(limit) => leak(RestartThenStop::new(limit)),
        };
        log!(
            "VM {} '{}': {} RAM at IPA {:#010x} (host {:#010x}), image '{}' from {:#010x}, {:?} on faults",
            index + 1,
            config.name,
            Size(config.ram_size as u64),
            config.ram_ipa,
            config.ram_host,
            config.kernel.name,
            config.kernel.host_address,
            VMS[index].policy
        );
        Vm::new(
            config.name,
            vcpu,
            &system.memories[index],
            devices,
            services,
            policy,
        )
        .with_interrupts(wiring[index].backend)
    }))
}

/// Runs the VMs with `platform` until all have stopped, reports, and stops
/// QEMU.
pub fn run_and_report(
    system: &System,
    vms: &mut [Vm<'static, ArmVcpu>; COUNT],
    platform: &dyn Platform,
) -> ! {
    let scheduler = RoundRobin::new(Counter.ticks_from_us(TIME_SLICE_US));
    system.mux.print_hypervisor(format_args!(
        "running {} VMs, {} ms time slices; console input goes to VM 1 '{}' (Ctrl-] n: next VM, Ctrl-] s: status)",
        COUNT,
        TIME_SLICE_US / 1000,
        system.configs[0].name
    ));
    let outcome = Kernel.run(vms, platform, &scheduler, EXIT_BUDGET);
    platform.set_alarm(None);
    report(vms, system.services, outcome)
}

/// Prints each VM's final state and stops QEMU: status 0 only if every VM
/// powered off without reporting a failure.
fn report(vms: &[Vm<'_, ArmVcpu>], service: &[HypervisorService], outcome: RunOutcome) -> ! {
    log!("all VMs have stopped ({:?}); VM status:", outcome);
    let mut passed = 0;
    for (index, (vm, service)) in vms.iter().zip(service).enumerate() {
        let status = service.exit_status();
        let ok = vm.state == VmState::Stopped && status.unwrap_or(0) == 0;
        passed += usize::from(ok);
        log!(
            "  VM {} '{}': {}{}: {}",
            index + 1,
            vm.name,
            if ok { "PASSED" } else { "FAILED" },
            StatusText(status),
            Describe(vm)
        );
    }
    log!("{} of {} VMs passed", passed, vms.len());
    let all = passed == vms.len() && outcome == RunOutcome::AllStopped;
    io::stop(if all {
        ExitCode::Success
    } else {
        ExitCode::VmFailed
    })
}

/// A VM's state and counters, as `Vm::describe` writes them.
struct Describe<'a, 'b>(&'a Vm<'b, ArmVcpu>);

impl core::fmt::Display for Describe<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.describe(f)
    }
}

/// " (status N)" when the guest reported one.
struct StatusText(Option<u32>);

impl core::fmt::Display for StatusText {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(status) => write!(f, " (status {})", status),
            None => Ok(()),
        }
    }
}
