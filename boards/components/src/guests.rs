// SPDX-License-Identifier: MIT OR Apache-2.0
//! Creating the VMs of the system image and running them to the end, on
//! any board.
//!
//! `docs/architecture.md`'s boot flow steps 3 to 5, in three calls the
//! board makes with its
//! own pieces in between: [`prepare`] (steps 1 and 3 below, up to the
//! devices), [`create_vms`] (step 2, given each VM's interrupt backend and
//! GIC windows), and [`run_and_report`] (the run and step 4, given the
//! board's platform):
//! 1. read the packed system image QEMU's loader left at the start of the
//!    board's staging area (`hyp::system_image::parse`: magic, version,
//!    lengths, offsets, checksum, every entry) and check the VM table it
//!    holds against the board with `hyp::config::validate`, reading every
//!    zImage's header again; any problem refuses the boot, naming it,
//!    before a VM exists;
//! 2. for each VM: stage-2 tables mapping its RAM and nothing else, its
//!    VMID, its RAM zeroed with the images copied in and cleaned to the
//!    point of coherency, its vCPU at its entry with the Linux boot
//!    registers, its capsules (virtual PL011, PSCI, Capvisor's service)
//!    and its fault policy;
//! 3. the console multiplexer (each VM's console mode, the focus the
//!    description gives), each VM's virtual UART, virtual GIC and
//!    hypervisor service, the board's interrupt backends and platform
//!    (clock, alarm, interrupt controller, console input) and a round robin
//!    scheduler; then `hyp::kernel::Kernel::run` until every VM has
//!    stopped;
//! 4. one status line per VM, and the exit status: 0 unless a VM reported
//!    a failure or was stopped by its fault policy.

use crate::board_disk::SharedBoardDisk;
use crate::devices::VmDisks;
use crate::flash_bank::PoolFlashBank;
use crate::platform::BoardPlatform;
use crate::platform::{SliceDisk, VmConsole, VmDisk};
use crate::{io, log};
use alloc::vec::Vec;
use armv7a::cp15_context::{Cp15Context, PmuContext};
use armv7a::generic_timer::Counter;
use armv7a::stage2::{vttbr, GuestAccess, GuestMapping, Stage2Tables};
use armv7a::vcpu::ArmVcpu;
use armv7a::world_switch::GuestContext;
use capsules::console_mux::{ConsoleMode, ConsoleMux, ConsolePort};
use capsules::fault_policies::{RestartThenStop, StopFaultPolicy};
use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use capsules::virtio::blk::VirtioBlk;
use capsules::virtio::board_slice::SliceSpec;
use capsules::virtio::ram_disk::RamDisk;
use capsules::virtual_gic::VirtualGic;
use capsules::virtual_uart::VirtualUart;
use core::sync::atomic::{AtomicUsize, Ordering};
use hyp::capabilities::{Stage2MappingCapability, VcpuCreationCapability};
use hyp::config::{
    validate, validate_board_slices, validate_disks, BoardDiskSize, BoardOffer, DeviceClaim,
    DiskConfig, ImageConfig, ImageProblem, VmConfig, MAX_DISKS, MAX_VMS,
};
use hyp::device_tree::{guest_device_tree, GuestTree};
use hyp::dispatch::{HypercallDriver, MmioDevice};
use hyp::exit::ExitCode;
use hyp::fault_policy::VmFaultPolicy;
use hyp::hil::block::BlockDevice;
use hyp::hil::guest_ram::{GuestRam, GuestRamError};
use hyp::hil::time::{Clock, WallClock};
use hyp::interrupts::InterruptBackend;
use hyp::kernel::{
    AnyLock, CpuKick, ExitStatus, Guarded, GuestMemory, Kernel, OneCpu, Platform, RunOutcome,
    VcpuObjects, VirtualCpu, Vm, VmMutex,
};
use hyp::memory::{MemoryType, Region, Size};
use hyp::report::{Judged, Tally};
use hyp::scheduler::RoundRobin;
use hyp::system_image::{self, DeviceTreeSource, FaultPolicy, KernelFormat};
use hyp::utilities::TakeOnce;

/// VMIDs available: 8 bits, 0 reserved for "no VM".
const VMIDS: usize = 255;
/// The most exits the VMs may take (none in practice: a stuck test is
/// caught by its timeout, and an interactive system runs for ever).
const EXIT_BUDGET: u32 = u32::MAX;
/// The scheduler's time slice.
const TIME_SLICE_US: u64 = 10_000;
/// The CPU that takes console input (the board routes the UART's
/// interrupt there and gives that CPU's platform the UART).
pub const CONSOLE_CPU: usize = 0;

/// Each VM's stage-2 tables: RAM in 2 MiB blocks needs one level-2 table,
/// a device window in the first GiB (a GIC's virtual CPU interface)
/// another, and a level-3 table for its pages; a firmware (IPA 0, in 2 MiB
/// blocks) shares the first GiB's level-2 table and needs no more.
static STAGE2: [TakeOnce<Stage2Tables<2, 1>>; MAX_VMS] =
    [const { TakeOnce::new(Stage2Tables::new()) }; MAX_VMS];

/// The probe `validate` calls for each image (`hyp::image::probe`, on the
/// image's bytes where the system image holds them).
fn probe(vm: &VmConfig<'_>, image: &ImageConfig) -> Result<u32, ImageProblem> {
    // SAFETY: `system_image::parse` proved the image's bytes lie inside
    // the system image, itself inside the staging area, which is mapped
    // read-only in the Hyp map ('guest-images') and written by nothing
    // while the hypervisor runs.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            image.host_address as usize as *const u8,
            image.size as usize,
        )
    };
    hyp::image::probe(vm, image, bytes)
}

/// Where a VM's device tree goes: 2 MiB below the end of its RAM (for a
/// VM with a firmware, the start of its RAM: see
/// [`VmRam::device_tree_offset`]).
const DEVICE_TREE_FROM_END: u32 = 0x0020_0000;

/// A VM's RAM and the images that go in it, and the device tree the
/// hypervisor wrote for it (only for VMs with boot arguments: a kernel
/// that reads one).
struct VmRam {
    config: VmConfig<'static>,
    device_tree: Option<Vec<u8>>,
    /// The second flash bank of a VM with a firmware.
    flash: Option<&'static PoolFlashBank>,
}

/// What the system image says of one VM beyond its configuration.
#[derive(Clone, Copy, Debug)]
pub struct VmSpec {
    /// Its fault policy.
    pub policy: FaultPolicy,
    /// Its console mode.
    pub console: ConsoleMode,
    /// Where its device tree comes from.
    pub device_tree: DeviceTreeSource,
    /// Its kernel's format.
    pub format: KernelFormat,
}

impl VmRam {
    /// The device tree's offset in RAM: for a kernel, 2 MiB below the end
    /// of RAM; for a firmware, 0, where U-Boot's `qemu_arm` (and QEMU's
    /// `virt` natively) puts it: the start of RAM (no kernel is loaded
    /// there; the firmware loads what it boots itself).
    fn device_tree_offset(&self) -> u32 {
        device_tree_offset(&self.config)
    }
}

/// Where in `config`'s RAM the device tree the hypervisor writes goes.
fn device_tree_offset(config: &VmConfig<'_>) -> u32 {
    match config.firmware {
        Some(_) => 0,
        None => config.ram_size - DEVICE_TREE_FROM_END,
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
            // SAFETY: source inside the system image in the staging area
            // (`system_image::parse` checked it), destination inside this
            // VM's RAM (`validate` checked size and offset), disjoint.
            unsafe {
                core::ptr::copy_nonoverlapping(
                    image.host_address as usize as *const u8,
                    (ram + image.load_offset as usize) as *mut u8,
                    image.size as usize,
                )
            };
        }
        if let Some(firmware) = self.config.firmware {
            let pages = self.config.firmware_host() as usize;
            let span = self.config.firmware_span() as usize;
            // SAFETY: the firmware's pages follow the VM's RAM in its pool
            // slice (`validate` proved the whole slice inside the pool,
            // mapped read-write in the Hyp map, and apart from every other
            // VM's); the source is inside the system image in the staging
            // area (`system_image::parse`), disjoint; the span is the
            // firmware's size rounded up, so the copy fits. The VM is not
            // running while it is reloaded: its ROM comes back as packed
            // (the guest maps it read-only anyway).
            unsafe {
                core::ptr::write_bytes(pages as *mut u8, 0, span);
                core::ptr::copy_nonoverlapping(
                    firmware.host_address as usize as *const u8,
                    pages as *mut u8,
                    firmware.size as usize,
                );
            }
            armv7a::cache::clean_to_poc(pages, span);
        }
        // The second flash bank: erased at the first start, kept across
        // restarts (`crate::flash_bank`).
        if let Some(flash) = self.flash {
            flash.load_once();
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

/// The device tree the hypervisor writes for a VM whose description asks
/// for one (a kernel that reads one: it has bootargs or an initrd);
/// refuses the boot if it cannot be written or does not fit.
fn write_device_tree(config: &VmConfig<'static>, spec: &VmSpec) -> Option<Vec<u8>> {
    if spec.device_tree != DeviceTreeSource::Generated {
        return None;
    }
    let initrd = config.initrd.map(|initrd| {
        let start = config.ram_ipa + initrd.load_offset;
        (start, start + initrd.size)
    });
    // A kernel's tree goes at the end of RAM, a firmware's at its start:
    // either way in 2 MiB of RAM nothing else uses (the tool keeps images
    // clear of it).
    let tree = guest_device_tree(&GuestTree {
        ram_base: config.ram_ipa,
        ram_size: config.ram_size,
        bootargs: config.bootargs,
        initrd,
        cpus: config.vcpus,
        devices: config.devices,
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

/// Whether `config` claims the device called `name` (`validate` proved a
/// claimed device is the board's, at the board's window for it).
fn claims(config: &VmConfig<'_>, name: &str) -> bool {
    config.devices.has(name)
}

/// The read-only mapping of `config`'s firmware at IPA 0 (its pages, the
/// firmware's size rounded up to 2 MiB blocks), if it has one.
fn firmware_mapping(config: &VmConfig<'_>) -> Option<GuestMapping> {
    config.firmware.map(|_| GuestMapping {
        name: "firmware",
        ipa: hyp::config::FIRMWARE_IPA,
        physical: config.firmware_host(),
        size: config.firmware_span(),
        memory: MemoryType::Normal,
        access: GuestAccess::ReadExecute,
    })
}

/// The read-only mapping of the start of `config`'s second flash bank
/// (its store: `capsules::flash` says why it is mapped, and when it is
/// switched off), if it has a firmware.
fn erased_bank_mapping(config: &VmConfig<'_>) -> Option<GuestMapping> {
    config.firmware.map(|_| GuestMapping {
        name: "flash-bank-1",
        ipa: hyp::config::FIRMWARE_IPA + hyp::guest_platform::FLASH_BANK_BYTES,
        physical: config.erased_bank_host(),
        size: hyp::config::ERASED_BANK_BYTES,
        memory: MemoryType::Normal,
        access: GuestAccess::ReadOnly,
    })
}

/// Builds VM `index`'s stage 2 (its RAM, its firmware read-only at IPA 0
/// and its second flash bank's store if it has one, and `extra` windows
/// such as a GIC's virtual CPU interface), gives its flash bank the switch
/// of the store's block, and builds the vCPU (VMID `index + 1`).
fn create_vcpu(
    capabilities: &VmCapabilities<'_>,
    index: usize,
    memory: &VmRam,
    device_tree: DeviceTreeSource,
    extra: &[GuestMapping],
    cp15_at_reset: Cp15Context,
    pmu_at_reset: PmuContext,
) -> ArmVcpu {
    let (config, flash) = (&memory.config, memory.flash);
    // SAFETY: taken only here, by the boot CPU as it creates the VMs (the
    // other CPUs wait for their work and take nothing).
    let tables = unsafe { STAGE2[index].take() }
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
        if let Err(error) = tables.map(capabilities.stage2, mapping) {
            io::refuse_boot(format_args!("VM '{}': {}", config.name, error));
        }
    }
    for mapping in firmware_mapping(config)
        .iter()
        .chain(erased_bank_mapping(config).iter())
    {
        if let Err(error) = tables.map(capabilities.stage2, mapping) {
            io::refuse_boot(format_args!("VM '{}': {}", config.name, error));
        }
    }
    if let Some(bank) = flash {
        let ipa = hyp::config::FIRMWARE_IPA + hyp::guest_platform::FLASH_BANK_BYTES;
        // SAFETY: the tables are this VM's for ever (a static, taken
        // once) and, once built here, nothing but this switch writes them.
        match unsafe { tables.block_switch(ipa) } {
            Some(switch) => bank.attach(switch),
            None => io::refuse_boot(format_args!(
                "VM '{}': its second flash bank is not one 2 MiB block",
                config.name
            )),
        }
    }
    let vmid = index as u8 + 1;
    let entry = config.entry_ipa();
    let mut boot = GuestContext::boot(entry);
    // The Linux boot protocol: r0 = 0, r1 = ~0 (no machine number, a
    // device tree instead), r2 = the device tree's address (0 if none).
    boot.r[1] = u32::MAX;
    boot.r[2] = match (config.device_tree, device_tree) {
        (Some(tree), _) => config.ram_ipa + tree.load_offset,
        (None, DeviceTreeSource::Generated) => config.ram_ipa + device_tree_offset(config),
        (None, _) => 0,
    };
    // SAFETY: these tables were taken for this VM alone (TakeOnce), live
    // in a static for ever, map only its RAM and the windows its wiring
    // names; VMID `index + 1` is this VM's alone.
    unsafe {
        ArmVcpu::new(
            capabilities.vcpu,
            boot,
            cp15_at_reset,
            pmu_at_reset,
            vttbr(vmid, tables.root_table_address()),
        )
    }
}

pub use crate::leak;

/// Where a board keeps guests: the RAM pool VMs are carved from and the
/// staging area QEMU's loader puts the system image in; and the board's
/// disk, which VMs' slices of it are served from.
#[derive(Clone, Copy)]
pub struct GuestPool {
    /// The pool (mapped read-write in the Hyp map).
    pub pool: &'static Region,
    /// The staging area (mapped read-only).
    pub staging: &'static Region,
    /// The devices the board offers VMs, at their windows.
    pub devices: &'static [DeviceClaim],
    /// The calendar time, for the VMs' real-time clocks.
    pub wall_clock: &'static dyn WallClock,
    /// How many CPUs are online: the VMs' vCPUs may run on CPUs 0 to
    /// `cpus - 1`, a VM has at most this many.
    pub cpus: usize,
    /// The board disk, if one is attached: [`prepare`] takes it over (the
    /// board must not use it afterwards) when a VM has a slice of it.
    pub board_disk: Option<&'static dyn BlockDevice<'static>>,
    /// How a completion of the board disk kicks the CPU of the VM it is
    /// for.
    pub kicker: &'static dyn CpuKick,
}

impl core::fmt::Debug for GuestPool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("GuestPool")
            .field("pool", &self.pool)
            .field("staging", &self.staging)
            .field("cpus", &self.cpus)
            .field("board_disk", &self.board_disk.map(|disk| disk.sectors()))
            .finish()
    }
}

/// What every VM has, created by [`prepare`] before the board adds its
/// interrupt backends: the checked configurations and the capsules that do
/// not depend on the board. Each slice has one entry per VM.
pub struct System {
    /// Each VM's configuration, read and checked.
    pub configs: Vec<VmConfig<'static>>,
    /// What else the system image says of each VM.
    pub specs: Vec<VmSpec>,
    /// Each VM's RAM and its images.
    memories: &'static [VmRam],
    /// The console multiplexer.
    pub mux: &'static ConsoleMux<'static>,
    /// Each VM's virtual PL011.
    pub uarts: &'static [VirtualUart<'static>],
    /// Each VM's devices but its GIC windows (its PL011 among them).
    pub devices: Vec<Vec<&'static dyn MmioDevice>>,
    /// Each VM's virtual GIC (its distributor state).
    pub gics: &'static [VirtualGic],
    /// Each VM's Capvisor service (its reported status).
    pub services: &'static [HypervisorService<'static>],
    /// The board disk, shared by the VMs' slices of it (none when no VM
    /// has one).
    pub board_disk: Option<&'static SharedBoardDisk>,
    /// Each VM's virtio-blk devices over board-disk slices, with their
    /// slice numbers: polled on the CPU of the VM's vCPU 0.
    board_slices: Vec<Vec<(usize, &'static VirtioBlk<'static>)>>,
}

impl System {
    /// How many VMs it has.
    pub fn count(&self) -> usize {
        self.configs.len()
    }

    /// The CPUs that deliver board-disk completions to VMs (bit n: CPU n,
    /// the CPU of vCPU 0 of a VM with a slice): where the board targets
    /// the disk's completion interrupt.
    pub fn board_disk_cpus(&self) -> u32 {
        self.configs
            .iter()
            .zip(&self.board_slices)
            .filter(|(_, slices)| !slices.is_empty())
            .fold(0, |mask, (config, _)| mask | 1 << config.cpu_of(0))
    }
}

/// How many devices a VM can have: a row of the guest platform each.
const PLATFORM_ROWS: usize = hyp::guest_platform::DEVICES.len();

/// Refuses the boot unless every device `config` claims is answered: by
/// one of `devices`, or a hardware window in `passthrough` (a row the
/// board offers with no capsule behind it would leave the guest aborting).
fn check_emulated(
    config: &VmConfig<'_>,
    devices: &[&'static dyn MmioDevice],
    passthrough: &[(DeviceClaim, GuestMapping)],
) {
    for name in config.devices.names() {
        let answered = devices.iter().any(|device| device.name() == name)
            || passthrough.iter().any(|(claim, _)| claim.name == name);
        if !answered {
            io::refuse_boot(format_args!(
                "VM '{}' claims device '{}', which this board makes no capsule for",
                config.name, name
            ));
        }
    }
}

/// One VM's RAM as its devices reach it (`hyp::hil::guest_ram`): the
/// guest-physical window `ram_ipa..ram_ipa + ram_size`, backed by
/// `ram_host..` in the guest pool, which the Hyp map maps read-write at
/// the same addresses. Every copy is checked against the window first.
#[derive(Clone, Copy, Debug)]
struct VmGuestRam {
    ipa: u64,
    host: usize,
    size: u64,
}

impl VmGuestRam {
    fn of(config: &VmConfig<'_>) -> VmGuestRam {
        VmGuestRam {
            ipa: config.ram_ipa as u64,
            host: config.ram_host as usize,
            size: config.ram_size as u64,
        }
    }

    /// The host address of `len` bytes at `ipa`, if all inside the RAM.
    fn host(&self, ipa: u64, len: usize) -> Result<usize, GuestRamError> {
        if self.contains(ipa, len) {
            Ok(self.host + (ipa - self.ipa) as usize)
        } else {
            Err(GuestRamError { ipa, len })
        }
    }
}

impl GuestRam for VmGuestRam {
    fn window(&self) -> (u64, u64) {
        (self.ipa, self.size)
    }

    fn read(&self, ipa: u64, out: &mut [u8]) -> Result<(), GuestRamError> {
        let from = self.host(ipa, out.len())?;
        if from.is_multiple_of(4) && out.len().is_multiple_of(4) {
            for (n, chunk) in out.chunks_exact_mut(4).enumerate() {
                // SAFETY: as below, with aligned word loads (the guest's
                // RAM is Normal memory: a word load of it never tears
                // into anything worse than a mix of old and new bytes).
                let word = unsafe { core::ptr::read_volatile((from + 4 * n) as *const u32) };
                chunk.copy_from_slice(&word.to_ne_bytes());
            }
            return Ok(());
        }
        for (n, byte) in out.iter_mut().enumerate() {
            // SAFETY: `host` proved `from..from + out.len()` is inside this
            // VM's RAM, which `validate` placed in the guest pool (mapped
            // read-write in the Hyp map) apart from everything else the
            // hypervisor owns. The guest's vCPUs may write these bytes
            // meanwhile: volatile byte loads read whatever is there, and
            // never form a reference to memory another CPU changes.
            *byte = unsafe { core::ptr::read_volatile((from + n) as *const u8) };
        }
        Ok(())
    }

    fn write(&self, ipa: u64, data: &[u8]) -> Result<(), GuestRamError> {
        let to = self.host(ipa, data.len())?;
        if to.is_multiple_of(4) && data.len().is_multiple_of(4) {
            for (n, chunk) in data.chunks_exact(4).enumerate() {
                let word = u32::from_ne_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
                // SAFETY: as below, with aligned word stores.
                unsafe { core::ptr::write_volatile((to + 4 * n) as *mut u32, word) };
            }
            return Ok(());
        }
        for (n, byte) in data.iter().enumerate() {
            // SAFETY: as for `read`: inside this VM's RAM, mapped
            // read-write; volatile stores, in order (the device's used
            // ring relies on that order, with its fence).
            unsafe { core::ptr::write_volatile((to + n) as *mut u8, *byte) };
        }
        Ok(())
    }
}

/// The RAM disk serving a VM's disk image `bytes` (in the staging area)
/// as `disk` says: in place when read-only, else from its copy in the pool.
fn image_disk(bytes: &'static [u8], disk: DiskConfig) -> &'static RamDisk<'static> {
    let Some(copy) = disk.copy else {
        return leak(RamDisk::read_only(bytes));
    };
    // SAFETY: `validate_disks` proved `copy..copy + size` lies inside the
    // guest pool (mapped read-write in the Hyp map) and overlaps no VM's
    // RAM and no other disk's copy; this is the only reference made to it,
    // once at boot, and it lives as long as the hypervisor runs.
    let copy: &'static mut [u8] =
        unsafe { core::slice::from_raw_parts_mut(copy as usize as *mut u8, bytes.len()) };
    copy.copy_from_slice(bytes);
    leak(RamDisk::writable(copy))
}

/// Moves `values` to the boot heap for the rest of the run, as a slice.
fn leak_all<T>(values: impl Iterator<Item = T>) -> &'static [T] {
    values.collect::<Vec<T>>().leak()
}

/// Reads the system image from the staging area and checks it against
/// the board's pool, devices and vCPUs, writes the guests' device trees
/// and creates the capsules every VM has; any problem refuses the boot
/// before a VM exists.
pub fn prepare(memory: GuestPool) -> System {
    #[cfg(feature = "bench")]
    crate::boot::count_hyp_cycles();
    // SAFETY: the staging area is mapped read-only in the Hyp map
    // ('guest-images'), nothing writes it while the hypervisor runs, and
    // every byte of it is readable (whatever the loader left there).
    let staged: &'static [u8] = unsafe {
        core::slice::from_raw_parts(
            memory.staging.start as usize as *const u8,
            memory.staging.size as usize,
        )
    };
    let table = system_image::parse(staged)
        .unwrap_or_else(|error| io::refuse_boot(format_args!("system image: {}", error)));
    let configs: Vec<VmConfig<'static>> = table
        .vms
        .iter()
        .map(|entry| VmConfig::from_table(&table, entry, memory.staging.start, memory.pool.start))
        .collect();
    let specs: Vec<VmSpec> = table
        .vms
        .iter()
        .map(|entry| VmSpec {
            policy: entry.policy,
            console: match entry.console {
                system_image::ConsoleMode::Shared => ConsoleMode::Shared,
                system_image::ConsoleMode::Held => ConsoleMode::Held,
                system_image::ConsoleMode::Discard => ConsoleMode::Discard,
            },
            device_tree: entry.device_tree,
            format: entry.format,
        })
        .collect();
    // The CPUs that came up on this boot: a description pinning a vCPU to
    // another is refused here, before any VM exists.
    let offer = BoardOffer {
        pool: memory.pool,
        vmids: VMIDS,
        vcpus: memory.cpus.min(hyp::config::MAX_VCPUS) as u32,
        cpus: memory.cpus as u32,
        devices: memory.devices,
    };
    if let Err(error) = validate(&configs, &offer, probe) {
        io::refuse_boot(format_args!("bad VM table: {}", error));
    }
    log!(
        "system image: {} bytes, checksum good; VM table checked: {} VMs",
        table.total,
        configs.len()
    );
    // Each firmware VM's second flash bank, in its pool slice.
    let flash_banks: Vec<Option<&'static PoolFlashBank>> = configs
        .iter()
        .map(|config| {
            config.firmware.map(|_| {
                // SAFETY: once per VM, here; `validate` proved its slice
                // (with the bank's bytes) inside the pool and its own.
                &*leak(unsafe { PoolFlashBank::new(config) })
            })
        })
        .collect();
    let memories = leak_all(configs.iter().zip(&specs).zip(&flash_banks).map(
        |((config, spec), flash)| VmRam {
            config: *config,
            device_tree: write_device_tree(config, spec),
            flash: *flash,
        },
    ));
    // The console: one physical UART shared through the multiplexer (its
    // writes under the console lock); each VM writes through its own port.
    let console: &'static io::SharedConsole = &io::SharedConsole;
    let consoles: Vec<(&'static str, ConsoleMode)> = configs
        .iter()
        .zip(&specs)
        .map(|(config, spec)| (config.name, spec.console))
        .collect();
    let mux: &'static ConsoleMux<'static> = leak(ConsoleMux::with_modes(console, &consoles));
    if table.focus != 0 {
        mux.set_focus(table.focus);
    }
    let ports: &'static [ConsolePort<'static, 'static>] =
        leak_all((0..configs.len()).map(|index| mux.port(index)));
    let gics: &'static [VirtualGic] = leak_all(
        configs
            .iter()
            .map(|config| VirtualGic::with_vcpus(config.vcpus as usize)),
    );
    let uarts: &'static [VirtualUart<'static>] = leak_all(
        ports
            .iter()
            .zip(gics)
            .map(|(port, gic)| crate::devices::uart(gic, port)),
    );
    // Each VM's disks: the system image's disk images, a read-only one
    // served where it lies, a writable one copied once to its place in
    // the pool (kept across the VM's restarts, until power off).
    let disk_configs: Vec<[Option<DiskConfig>; MAX_DISKS]> = table
        .vms
        .iter()
        .map(|entry| DiskConfig::from_table(&table, entry, memory.staging.start, memory.pool.start))
        .collect();
    if let Err(error) = validate_disks(&configs, &disk_configs, memory.pool) {
        io::refuse_boot(format_args!("bad VM table: {}", error));
    }
    // Slices of the board disk: checked against the disk that is really
    // there (none: any slice is refused), before any VM starts.
    let board_size = memory.board_disk.map_or(BoardDiskSize::Absent, |disk| {
        BoardDiskSize::Sectors(disk.sectors())
    });
    if let Err(error) = validate_board_slices(&configs, &disk_configs, board_size) {
        io::refuse_boot(format_args!("bad VM table: {}", error));
    }
    let mut slice_specs: Vec<SliceSpec> = Vec::new();
    let mut slice_numbers: Vec<[Option<usize>; MAX_DISKS]> = Vec::new();
    for (config, disks) in configs.iter().zip(&disk_configs) {
        let mut numbers = [None; MAX_DISKS];
        for (slot, disk) in disks.iter().enumerate() {
            let Some((slice, read_only)) =
                disk.and_then(|disk| Some((disk.board?, disk.read_only)))
            else {
                continue;
            };
            numbers[slot] = Some(slice_specs.len());
            slice_specs.push(SliceSpec {
                first: u64::from(slice.first),
                sectors: u64::from(slice.sectors),
                // A read-only board disk makes every slice read-only.
                read_only: read_only || memory.board_disk.is_some_and(|disk| disk.read_only()),
                cpu: config.cpu_of(0),
            });
            log!(
                "board disk slice {}: VM '{}' disk {}, {} at {} (sectors {}..{}){}",
                slice_specs.len() - 1,
                config.name,
                slot,
                Size(u64::from(slice.sectors) * 512),
                Size(u64::from(slice.first) * 512),
                slice.first,
                slice.end(),
                if read_only { ", read-only" } else { "" }
            );
        }
        slice_numbers.push(numbers);
    }
    let board_disk: Option<&'static SharedBoardDisk> = match memory.board_disk {
        Some(disk) if !slice_specs.is_empty() => {
            Some(crate::board_disk::share(disk, &slice_specs, memory.kicker))
        }
        _ => None,
    };
    let vm_disks: Vec<VmDisks> = table
        .vms
        .iter()
        .zip(&disk_configs)
        .zip(&configs)
        .zip(&slice_numbers)
        .map(|(((entry, disk_configs), config), numbers)| VmDisks {
            ram: leak(VmGuestRam::of(config)),
            disks: core::array::from_fn(|slot| {
                let image = entry.disks().nth(slot)?;
                let disk = disk_configs[slot]?;
                if disk.board.is_some() {
                    let slice = board_disk?.slice(numbers[slot]?)?;
                    return Some(leak(slice) as &dyn BlockDevice<'static>);
                }
                Some(image_disk(image.bytes, disk) as &dyn BlockDevice<'static>)
            }),
            vm: config.name,
        })
        .collect();
    let disk_count: usize = disk_configs.iter().flatten().flatten().count();
    if disk_count > 0 {
        match slice_specs.len() {
            0 => log!("disks: {} image disks on virtio-mmio", disk_count),
            slices => log!(
                "disks: {} image disks and {} board-disk slices on virtio-mmio",
                disk_count - slices,
                slices
            ),
        }
    }
    let mut board_slices: Vec<Vec<(usize, &'static VirtioBlk<'static>)>> = Vec::new();
    let devices = gics
        .iter()
        .zip(uarts)
        .zip(&configs)
        .zip(vm_disks)
        .zip(&flash_banks)
        .zip(&slice_numbers)
        .map(|(((((gic, uart), _config), disks), flash), numbers)| {
            let (mut devices, blks) =
                crate::devices::vm_devices(gic, uart, &Counter, memory.wall_clock, disks);
            board_slices.push(
                numbers
                    .iter()
                    .zip(blks)
                    .filter_map(|(number, blk)| Some(((*number)?, blk?)))
                    .collect(),
            );
            if let Some(bank) = *flash {
                devices.push(leak(capsules::flash::FlashWindow::new(bank)) as &dyn MmioDevice);
            }
            devices
        })
        .collect();
    let services =
        leak_all(ports.iter().enumerate().map(|(index, port)| {
            HypervisorService::new(index as u32 + 1, configs[index].name, port)
        }));
    System {
        configs,
        specs,
        memories,
        mux,
        uarts,
        devices,
        gics,
        services,
        board_disk,
        board_slices,
    }
}

impl core::fmt::Debug for System {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("System")
            .field("vms", &self.count())
            .finish()
    }
}

/// One vCPU's interrupt wiring, from the board: its backend, the device
/// that answers its distributor window (its view of the VM's
/// distributor), the device that answers its CPU interface window if it
/// is emulated, and stage-2 windows onto hardware (the GIC's virtual CPU
/// interface) if not.
#[derive(Clone, Copy)]
pub struct InterruptWiring {
    /// The vCPU's interrupt backend.
    pub backend: &'static dyn InterruptBackend,
    /// Its GICD window.
    pub distributor: &'static dyn MmioDevice,
    /// Its GICC window, when trapped and emulated.
    pub cpu_interface: Option<&'static dyn MmioDevice>,
    /// Hardware windows its VM's stage 2 maps (each only if the VM claims
    /// the device named as the mapping; vCPU 0's are used).
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

/// The capabilities creating VMs takes, from the board.
#[derive(Clone, Copy)]
pub struct VmCapabilities<'a> {
    /// To map each VM's RAM and windows into its stage 2.
    pub stage2: &'a dyn Stage2MappingCapability,
    /// To create each VM's vCPUs on those tables.
    pub vcpu: &'a dyn VcpuCreationCapability,
}

impl core::fmt::Debug for VmCapabilities<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("VmCapabilities")
    }
}

/// The VMs, created: each VM, and each CPU's vCPUs with the backends the
/// CPU serves.
pub struct Vms {
    /// Every VM, in the table's order.
    pub vms: &'static [&'static Vm<'static>],
    /// Each online CPU's vCPUs (of any VM), the order it schedules them in.
    pub per_cpu: Vec<Vec<VirtualCpu<'static, ArmVcpu>>>,
    /// Each online CPU's vCPUs' interrupt backends, under their VMs'
    /// locks (for the physical interrupts the platform forwards).
    pub backends: Vec<Vec<Guarded<&'static dyn InterruptBackend, AnyLock<'static>>>>,
    /// Each VM's virtual UART and first vCPU's backend, under its lock
    /// (console input, and the kicks it causes).
    pub consoles: Vec<Guarded<VmConsole<'static>, AnyLock<'static>>>,
    /// Each online CPU's virtual disks over board-disk slices (of the VMs
    /// whose vCPU 0 runs there), under their VMs' locks: the CPU delivers
    /// their completions.
    pub disks: Vec<Vec<SliceDisk<'static>>>,
}

/// The exit status a VM's Capvisor service holds, as the kernel reads it
/// (under the VM's lock) when a vCPU publishes.
struct ReportedStatus(&'static HypervisorService<'static>);

impl ExitStatus for ReportedStatus {
    fn exit_status(&self) -> Option<u32> {
        self.0.exit_status()
    }
}

impl core::fmt::Debug for Vms {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Vms")
            .field("vms", &self.vms.len())
            .field(
                "per_cpu",
                &self.per_cpu.iter().map(Vec::len).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Creates the VMs: RAM loaded, stage 2, each vCPU at its entry (vCPU 0)
/// or off (the others, until PSCI CPU_ON), capsules (virtual PL011,
/// virtual GIC windows, PSCI, Capvisor's service) and fault policy. The
/// board gives each vCPU's interrupt wiring (`wiring(vm, vcpu)`), the
/// capabilities to build stage 2 and vCPUs, the way to kick another CPU,
/// and how many CPUs are online.
pub fn create_vms(
    system: &System,
    wiring: &dyn Fn(usize, usize) -> InterruptWiring,
    capabilities: &VmCapabilities<'_>,
    kicker: &'static dyn CpuKick,
    cpus: usize,
) -> Vms {
    let counter = Counter;
    let cp15_at_reset = Cp15Context::save();
    let pmu_at_reset = PmuContext::save();
    let stop_policy: &'static StopFaultPolicy = leak(StopFaultPolicy);
    let mut per_cpu: Vec<Vec<VirtualCpu<'static, ArmVcpu>>> =
        (0..cpus).map(|_| Vec::new()).collect();
    let mut backends: Vec<Vec<Guarded<&'static dyn InterruptBackend, AnyLock<'static>>>> =
        (0..cpus).map(|_| Vec::new()).collect();
    let mut vms: Vec<&'static Vm<'static>> = Vec::new();
    let mut consoles: Vec<Guarded<VmConsole<'static>, AnyLock<'static>>> = Vec::new();
    let mut disks: Vec<Vec<SliceDisk<'static>>> = (0..cpus).map(|_| Vec::new()).collect();
    for index in 0..system.count() {
        let config = &system.configs[index];
        let spec = &system.specs[index];
        let vcpus = config.vcpus as usize;
        let mut extra: heapless::Vec<GuestMapping, 4> = heapless::Vec::new();
        for (claim, mapping) in wiring(index, 0).passthrough {
            if claims(config, claim.name) {
                let _ = extra.push(*mapping);
            }
        }
        system.memories[index].load();
        let mut first = create_vcpu(
            capabilities,
            index,
            &system.memories[index],
            spec.device_tree,
            &extra,
            cp15_at_reset,
            pmu_at_reset,
        );
        // The VM's virtual counter starts at 0 now and runs with the
        // physical one from then on (see capsules::virtual_timer).
        first.virtual_offset = counter.now();
        let policy: &'static dyn VmFaultPolicy = match spec.policy {
            FaultPolicy::Stop => stop_policy,
            FaultPolicy::Restart(limit) => leak(RestartThenStop::new(limit)),
        };
        let vm: &'static Vm<'static> = leak(Vm::new(config.name, index).with_vcpus(
            &config.cpus[..vcpus],
            kicker,
            (config.ram_ipa, config.ram_size),
        ));
        vms.push(vm);
        // The VM's lock: none for a VM only the console's CPU reaches (its
        // one vCPU runs there), its own spin lock for any other.
        let mutex: Option<&'static VmMutex> =
            (!vm.runs_only_on(CONSOLE_CPU)).then(|| &*leak(VmMutex::new()));
        let status: &'static ReportedStatus = leak(ReportedStatus(&system.services[index]));
        log!(
            "VM {} '{}': {} RAM at IPA {:#010x} (host {:#010x}), {} entered at {:#010x}{}; {}; console {}; {}",
            index + 1,
            config.name,
            Size(config.ram_size as u64),
            config.ram_ipa,
            config.ram_host,
            Boot(config, spec.format),
            config.entry_ipa(),
            Initrd(config.initrd),
            spec.policy,
            spec.console,
            Placement(&config.cpus[..vcpus])
        );
        for vcpu_number in 0..vcpus {
            let wiring = wiring(index, vcpu_number);
            // Each vCPU gets the devices its VM claims (the table was
            // checked: each is one of the board's, at its own window), as
            // its own views where the device is banked per CPU; at most
            // one per row of the guest platform. The order is the MMIO
            // lookup's (`hyp::dispatch::Routes` walks the windows in
            // turn): the hot ones first, the emulated GIC CPU interface
            // (two accesses per interrupt where the board has no GICV),
            // then the UART (one per character), then the rest.
            let (uart, others) = system.devices[index].split_at(1);
            let devices: &'static heapless::Vec<&'static dyn MmioDevice, PLATFORM_ROWS> = leak(
                wiring
                    .cpu_interface
                    .into_iter()
                    .chain(uart.iter().copied())
                    .chain([wiring.distributor])
                    .chain(others.iter().copied())
                    .filter(|device| claims(config, device.name()))
                    .collect(),
            );
            if vcpu_number == 0 {
                check_emulated(config, devices, wiring.passthrough);
            }
            let psci: &'static Psci<'static> = leak(if vcpus > 1 {
                Psci::for_vcpu(vm, vcpu_number)
            } else {
                Psci::new()
            });
            let services: &'static [&'static dyn HypercallDriver; 2] =
                leak([psci as &dyn HypercallDriver, &system.services[index]]);
            let mut arch = first;
            arch.set_vcpu_number(vcpu_number);
            let objects = VcpuObjects::new(devices, services, &system.memories[index], policy)
                .unwrap_or_else(|error| {
                    io::refuse_boot(format_args!("VM '{}': {}", config.name, error))
                })
                .with_interrupts(wiring.backend)
                .with_status(status);
            if vcpu_number == 0 {
                // Every boot starts with its devices reset, the first as
                // every restart. A VM that restarts must come back with
                // nothing of its last life in them: each must be able to
                // reset.
                let reset = objects.routes.reset_all();
                if let (FaultPolicy::Restart(_), Err(device)) = (spec.policy, reset) {
                    io::refuse_boot(format_args!(
                        "VM '{}' is restarted on a fault, but its device '{}' cannot be reset",
                        config.name, device
                    ));
                }
            }
            let objects: Guarded<VcpuObjects<'static>, AnyLock<'static>> = match mutex {
                None => OneCpu::new().guard(objects).into(),
                // SAFETY: this VM's capsules (its virtual UART, GIC,
                // PSCI, Capvisor service, fault policy, RAM and virtio
                // disks) are reached only through guards on its own
                // mutex: its vCPUs' objects made here, and the console's,
                // the platforms' and the disk pollers' views made from
                // them below (`map`). (A disk's board-disk slice reaches
                // the board disk through that disk's own lock, taken
                // inside this one.) `System`
                // keeps the capsules in slices, but after this only the
                // boards' wiring (before any vCPU runs) and nothing that
                // runs touches them there: the final report reads the
                // status the vCPUs published, not the service.
                Some(mutex) => unsafe { mutex.guard(objects) }.into(),
            };
            if vcpu_number == 0 {
                let uart = &system.uarts[index];
                consoles.push(objects.map(|objects| VmConsole {
                    uart,
                    backend: objects.interrupts,
                }));
                // Its disks over board-disk slices are polled where its
                // vCPU 0 runs (each slice's kick goes there).
                for &(slice, blk) in &system.board_slices[index] {
                    disks[vm.cpu_of(0)].push(SliceDisk {
                        slice,
                        vm,
                        disk: objects.map(|objects| VmDisk {
                            blk,
                            backend: objects.interrupts,
                        }),
                    });
                }
            }
            let cpu = vm.cpu_of(vcpu_number);
            backends[cpu].push(objects.map(|objects| objects.interrupts));
            per_cpu[cpu].push(VirtualCpu::new(vm, vcpu_number, arch, objects));
        }
    }
    Vms {
        vms: vms.leak(),
        per_cpu,
        backends,
        consoles,
        disks,
    }
}

/// "zImage kernel of N bytes", or "firmware of N bytes at IPA 0".
struct Boot<'a>(&'a VmConfig<'a>, KernelFormat);

impl core::fmt::Display for Boot<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match (self.0.kernel, self.0.firmware) {
            (_, Some(firmware)) => write!(
                f,
                "firmware of {} bytes at IPA {:#010x} (read-only)",
                firmware.size,
                hyp::config::FIRMWARE_IPA
            ),
            (Some(kernel), None) => write!(f, "{} kernel of {} bytes", self.1, kernel.size),
            (None, None) => f.write_str("no kernel"),
        }
    }
}

/// ", initrd of N bytes" when there is one.
struct Initrd(Option<ImageConfig>);

impl core::fmt::Display for Initrd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            Some(initrd) => write!(f, ", initrd of {} bytes", initrd.size),
            None => Ok(()),
        }
    }
}

/// "on CPU 0", or "2 vCPUs on CPUs 1, 2".
struct Placement<'a>(&'a [u8]);

impl core::fmt::Display for Placement<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.0 {
            [cpu] => write!(f, "on CPU {}", cpu),
            cpus => {
                write!(f, "{} vCPUs on CPUs ", cpus.len())?;
                for (n, cpu) in cpus.iter().enumerate() {
                    let separator = if n == 0 { "" } else { ", " };
                    write!(f, "{}{}", separator, cpu)?;
                }
                Ok(())
            }
        }
    }
}

/// What one CPU runs: its vCPUs and its platform.
struct CpuWork {
    vcpus: Vec<VirtualCpu<'static, ArmVcpu>>,
    platform: &'static BoardPlatform<'static>,
}

/// [`CpuWork`] on its way from the boot CPU to the CPU that runs it.
struct Handoff(CpuWork);

// SAFETY: the boot CPU builds each CPU's work and hands it over once
// (through `WORK`), never touching it again; from then on only the
// receiving CPU uses the vCPUs and the platform (the platform's `Cell`s
// included). What else keeps `CpuWork` from being `Send`:
// - the vCPUs' and the platform's guards (its backends and its slice
//   disks) are `AnyLock` ones, which may be `OneCpu`: but `create_vms`
//   gives `OneCpu` only to a VM whose one vCPU runs on `CONSOLE_CPU`,
//   whose work is never handed over, so every guard a secondary CPU gets
//   is on a spin lock, which may move (`hyp::kernel::lock`);
// - the platform reaches, through what all platforms share, every VM's
//   console guard (`OneCpu` ones among them), but only on the CPU that
//   owns the console UART (`CONSOLE_CPU`): a secondary CPU's platform has
//   none and never touches them; the rest it shares (clock, alarm, GIC
//   driver, console multiplexer, the `Vm`s, the shared board disk, whose
//   multiplexer is behind its own spin lock) is `Sync`.
#[allow(unsafe_code)]
unsafe impl Send for Handoff {}

/// Each CPU's work, set once by the boot CPU.
static WORK: [spin::Mutex<Option<Handoff>>; armv7a::cpu::MAX_CPUS] =
    [const { spin::Mutex::new(None) }; armv7a::cpu::MAX_CPUS];

/// What the final report needs, set once by the boot CPU: the VMs' shared
/// state (atomics and what their vCPUs published, `Sync` without a claim
/// of ours), read by whichever CPU reports.
struct Reporting {
    vms: &'static [&'static Vm<'static>],
    cpus: usize,
}

static REPORTING: spin::Once<Reporting> = spin::Once::new();
/// CPUs that finished running their vCPUs.
static FINISHED: AtomicUsize = AtomicUsize::new(0);

/// Runs the VMs on every online CPU: hands each secondary CPU its vCPUs
/// and platform (`platforms[cpu]`), runs the boot CPU's, and when the last
/// CPU is done, reports and stops QEMU.
pub fn run_and_report(
    system: &System,
    vms: Vms,
    platforms: Vec<&'static BoardPlatform<'static>>,
) -> ! {
    let cpus = vms.per_cpu.len();
    REPORTING.call_once(|| Reporting { vms: vms.vms, cpus });
    let focus = system.mux.focus();
    system.mux.print_hypervisor(format_args!(
        "running {} VMs on {} CPU{}, {} ms time slices; console input goes to VM {} '{}' (Ctrl-] n: next VM, Ctrl-] s: status)",
        system.count(),
        cpus,
        if cpus == 1 { "" } else { "s" },
        TIME_SLICE_US / 1000,
        focus + 1,
        system.configs[focus].name
    ));
    let mut own = None;
    for (cpu, (vcpus, platform)) in vms.per_cpu.into_iter().zip(platforms).enumerate() {
        let work = CpuWork { vcpus, platform };
        if cpu == 0 {
            own = Some(work);
        } else {
            *WORK[cpu].lock() = Some(Handoff(work));
        }
    }
    armv7a::cpu::send_event();
    match own {
        Some(work) => run_cpu(0, work),
        None => io::refuse_boot(format_args!("no CPU to run on")),
    }
}

/// A secondary CPU's part once it is online: waits for its work from the
/// boot CPU, then runs it (never returns).
pub fn run_secondary(cpu: usize) -> ! {
    let work = loop {
        if let Some(Handoff(work)) = WORK[cpu].lock().take() {
            break work;
        }
        armv7a::cpu::wait_for_event();
    };
    run_cpu(cpu, work)
}

/// Runs one CPU's vCPUs until they have all stopped; the last CPU to
/// finish reports.
fn run_cpu(cpu: usize, mut work: CpuWork) -> ! {
    work.platform.enable_interrupts();
    let scheduler = RoundRobin::new(Counter.ticks_from_us(TIME_SLICE_US));
    let outcome = Kernel.run(&mut work.vcpus, work.platform, &scheduler, EXIT_BUDGET);
    work.platform.set_alarm(None);
    let Some(reporting) = REPORTING.get() else {
        io::stop(ExitCode::Fatal)
    };
    if let RunOutcome::Panicked { vm } = outcome {
        log!(
            "CPU {}: VM {} '{}''s fault policy stops the hypervisor",
            cpu,
            vm + 1,
            reporting.vms[vm].name
        );
        report(reporting, outcome)
    }
    if FINISHED.fetch_add(1, Ordering::AcqRel) + 1 == reporting.cpus {
        report(reporting, outcome)
    }
    // Another CPU reports when the last one finishes.
    loop {
        armv7a::cpu::wait_for_interrupt();
    }
}

/// Prints each VM's final state and verdict (`hyp::report`: only a VM that
/// reported a status through Capvisor's service passes or fails by it; one
/// its fault policy stopped has failed, status or not), then stops QEMU
/// with the exit status the verdicts give.
fn report(reporting: &Reporting, outcome: RunOutcome) -> ! {
    log!("all VMs have stopped ({:?}); VM status:", outcome);
    let mut tally = Tally::default();
    for (index, vm) in reporting.vms.iter().enumerate() {
        // As its vCPUs published it (every time one stops): a VM still
        // running (a panic policy stopped the run) is never reached here.
        let judged = Judged::new(vm.is_faulted(), vm.exit_status());
        tally.count(judged.verdict);
        log!(
            "  VM {} '{}': {}{}",
            index + 1,
            vm.name,
            judged,
            Describe(vm)
        );
    }
    log!("{}", tally);
    io::stop(tally.exit_code(outcome == RunOutcome::AllStopped))
}

/// A VM's state and counters, as `Vm::describe` writes them.
struct Describe<'a, 'b>(&'a Vm<'b>);

impl core::fmt::Display for Describe<'_, '_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.0.describe(f)
    }
}
