// SPDX-License-Identifier: MIT OR Apache-2.0
//! A hostile guest, beside a victim VM that must keep making progress.
//! It first sleeps 300 ms, so that the victim measures its progress alone,
//! then attacks:
//! - reads and writes every address it could guess (below its RAM, past
//!   it, the host's RAM alias where the hypervisor and other VMs live, the
//!   image staging area, the host's devices), and one in every MiB of the
//!   IPA space;
//! - aims accesses without a syndrome (LDM/STM, exclusives) and unaligned
//!   accesses at the emulated devices;
//! - sweeps every cache level by set/way (invalidate, clean, both) and aims
//!   cache maintenance by address at the devices and the probed addresses;
//! - calls HVC and SMC across every owner with hostile arguments;
//! - writes random values to every register of its virtual UART and GIC;
//! - storms its own timer interrupt and floods its UART for 100 ms;
//! - attacks its virtio-blk disk's transport and virtqueue
//!   ([`virtqueues`]): descriptors into the hypervisor, the other VM,
//!   device windows and past the end of RAM, chains that loop, lengths
//!   that wrap, bad queue sizes and areas, notifications of absent
//!   queues, feature negotiation abuse and a reset after a notification,
//!   each with the outcome the transport documents.
//!
//! Every case must be contained: an abort injected into this guest, an
//! architected error, or the access absorbed by the device. It prints how
//! many cases it tried and how many were contained, how many data aborts
//! it took (the hypervisor's counter of injected faults must agree), and
//! when the attack began and ended on its virtual counter.
//!
//! A VM named `hostile-smp` (one vCPU) makes the SMP attack instead, for
//! 1.5 s after the same sleep ([`smp_attack`]): SGIs to every other CPU
//! and to every CPU of the target list, PSCI CPU_ON and AFFINITY_INFO of
//! vCPUs it does not have, CPU_ON of itself, all ones into every interrupt
//! target, set-pending and set-enable register, and the targets read back.
//! It prints one line per kind of case with how many it tried and how many
//! failed, and reports failure if any did.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, expect_exception, gic, hvc, println, psci, read32, set_irq_handler,
    sleep_until, smc, smp, timer, vector, write32, Checks, Exception,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

mod virtqueues;

capvisor_test_guests::guest!("hostile", main);

/// Addresses a guest might try: its IPA space outside its own RAM and
/// devices, including the hosts' physical layouts (the hypervisor's image,
/// its devices, the other VMs' RAM and the staging area on Integrator/CP
/// and on QEMU virt, whose GIC hypervisor interface GICH and virtual CPU
/// interface GICV sit at 0x0803_0000 and 0x0804_0000).
/// The MiBs of the IPA space its own RAM takes (2 MiB at 0x4000_0000).
const OWN_RAM_MIB: core::ops::Range<u32> = 0x400..0x402;

/// The emulated devices' windows: PL011, GIC distributor, GIC CPU
/// interface.
const DEVICES: [u32; 3] = [0x0900_0000, 0x0800_0000, 0x0801_0000];

const PROBES: [u32; 20] = [
    0x0000_0000,
    0x0001_0000,
    0x0002_0000,
    0x0007_0000,
    0x0803_0000,
    0x0804_0000,
    0x0804_1000,
    0x1000_0000,
    0x1300_0000,
    0x1400_0000,
    0x1600_0000,
    0x1700_0000,
    0x3fff_fffc,
    0x4020_0000,
    0x8100_0000,
    0x8120_0000,
    0x7000_0000,
    0x9000_0000,
    0xb000_0000,
    0xffff_fffc,
];

/// The attack's sections (the numbered parts of [`attack`]).
const SECTIONS: usize = 7;

/// Cases tried, per section of the attack (the section under way is
/// `section`, set at the start of each), and how many were contained.
/// The test derives each section's count per round from the loops of
/// [`attack`] and compares.
struct Tally {
    section: usize,
    tried: [u32; SECTIONS],
    contained: u32,
}

impl Tally {
    fn case(&mut self, contained: bool) {
        self.tried[self.section] += 1;
        self.contained += u32::from(contained);
    }

    fn tried(&self) -> u32 {
        self.tried.iter().sum()
    }
}

/// A load from `address`, which this guest does not own.
fn load(address: u32) {
    // SAFETY: the load aborts (expected; the runtime skips it).
    unsafe { core::arch::asm!("ldr {v}, [{a}]", a = in(reg) address, v = out(reg) _) };
}

/// A store to `address`, which this guest does not own.
fn store(address: u32) {
    // SAFETY: the store aborts (expected; the runtime skips it).
    unsafe { core::arch::asm!("str {v}, [{a}]", a = in(reg) address, v = in(reg) 0xdead_beefu32) };
}

/// LDM from a device: no syndrome.
fn load_multiple(device: u32) {
    // SAFETY: as for `load`.
    unsafe {
        core::arch::asm!("ldm {a}, {{r2, r3}}", a = in(reg) device, out("r2") _, out("r3") _)
    };
}

/// STM to a device: no syndrome.
fn store_multiple(device: u32) {
    // SAFETY: as for `store`.
    unsafe { core::arch::asm!("stm {a}, {{r2, r3}}", a = in(reg) device, in("r2") 1, in("r3") 2) };
}

/// LDREX from a device: no syndrome.
fn load_exclusive(device: u32) {
    // SAFETY: as for `load`.
    unsafe { core::arch::asm!("ldrex {v}, [{a}]", a = in(reg) device, v = out(reg) _) };
}

/// A halfword store to `address`, which is odd.
fn store_halfword(address: u32) {
    // SAFETY: as for `store`.
    unsafe { core::arch::asm!("strh {v}, [{a}]", a = in(reg) address, v = in(reg) 0x4141u32) };
}

/// Data aborts this guest took (each one injected by the hypervisor).
static ABORTS: AtomicU32 = AtomicU32::new(0);

/// Runs `access`, which may take one synchronous exception; returns it,
/// counting data aborts.
fn outcome(access: impl FnOnce()) -> Option<Exception> {
    let exception = expect_exception(access);
    if exception.is_some_and(|exception| exception.vector == vector::DATA_ABORT) {
        ABORTS.fetch_add(1, Ordering::Relaxed);
    }
    exception
}

/// An access that must come back as a data abort at this guest's vector.
fn aborts(access: impl FnOnce()) -> bool {
    outcome(access).is_some_and(|exception| exception.vector == vector::DATA_ABORT)
}

/// DFSR's fault status (short-descriptor format: FS[4] is bit 10).
fn fault_status(dfsr: u32) -> u32 {
    (dfsr & 0xf) | ((dfsr >> 6) & 0x10)
}

/// The short-descriptor fault status of an alignment fault.
const ALIGNMENT_FAULT: u32 = 0b00001;

/// An access that must come back as an alignment fault.
fn alignment_fault(access: impl FnOnce()) -> bool {
    outcome(access).is_some_and(|exception| {
        exception.vector == vector::DATA_ABORT && fault_status(exception.dfsr) == ALIGNMENT_FAULT
    })
}

/// A cache maintenance operation.
#[derive(Clone, Copy)]
enum CacheOp {
    /// DCISW / DCIMVAC.
    Invalidate,
    /// DCCSW / DCCMVAC.
    Clean,
    /// DCCISW / DCCIMVAC.
    CleanInvalidate,
}

/// `op` by set/way on the cache line `set_way` (level, set and way packed
/// as the architecture defines).
fn by_set_way(op: CacheOp, set_way: u32) {
    // SAFETY: set/way operations work on the cache only; with HCR.SWIO the
    // hypervisor makes an invalidation clean first, so nobody's data is
    // lost.
    unsafe {
        match op {
            CacheOp::Invalidate => core::arch::asm!("mcr p15, 0, {}, c7, c6, 2", in(reg) set_way),
            CacheOp::Clean => core::arch::asm!("mcr p15, 0, {}, c7, c10, 2", in(reg) set_way),
            CacheOp::CleanInvalidate => {
                core::arch::asm!("mcr p15, 0, {}, c7, c14, 2", in(reg) set_way)
            }
        }
    }
}

/// `op` by address on `address`, which this guest does not own.
fn by_address(op: CacheOp, address: u32) {
    // SAFETY: maintenance of a line this guest cannot reach: it is a no-op
    // or aborts (expected; the runtime skips it).
    unsafe {
        match op {
            CacheOp::Invalidate => core::arch::asm!("mcr p15, 0, {}, c7, c6, 1", in(reg) address),
            CacheOp::Clean => core::arch::asm!("mcr p15, 0, {}, c7, c10, 1", in(reg) address),
            CacheOp::CleanInvalidate => {
                core::arch::asm!("mcr p15, 0, {}, c7, c14, 1", in(reg) address)
            }
        }
    }
}

/// Applies `op` to every set and way of every data or unified cache level
/// up to the level of coherency (CLIDR, CSSELR, CCSIDR); returns how many
/// lines it named.
fn sweep_by_set_way(op: CacheOp) -> u32 {
    let clidr: u32;
    // SAFETY: reading CLIDR has no side effects.
    unsafe { core::arch::asm!("mrc p15, 1, {}, c0, c0, 1", out(reg) clidr) };
    let coherency_levels = (clidr >> 24) & 7;
    let mut lines = 0;
    for level in 0..coherency_levels {
        // Cache type: 2 data only, 3 separate instruction and data, 4
        // unified.
        if (clidr >> (3 * level)) & 7 < 2 {
            continue;
        }
        let ccsidr: u32;
        // SAFETY: CSSELR selects the level CCSIDR describes; nothing else.
        unsafe {
            core::arch::asm!(
                "mcr p15, 2, {select}, c0, c0, 0",
                "isb",
                "mrc p15, 1, {ccsidr}, c0, c0, 0",
                select = in(reg) level << 1,
                ccsidr = out(reg) ccsidr,
            )
        };
        let line_shift = (ccsidr & 7) + 4;
        let ways = ((ccsidr >> 3) & 0x3ff) + 1;
        let sets = ((ccsidr >> 13) & 0x7fff) + 1;
        // The way number sits in the top bits: as many as the ways need.
        let way_shift = (ways - 1).leading_zeros();
        for way in 0..ways {
            let way_bits = if ways > 1 { way << way_shift } else { 0 };
            for set in 0..sets {
                by_set_way(op, way_bits | (set << line_shift) | (level << 1));
                lines += 1;
            }
        }
    }
    lines
}

/// Microseconds on this VM's virtual counter.
fn now_us() -> u64 {
    timer::now() * 1_000_000 / u64::from(timer::frequency())
}

static STORM: AtomicU32 = AtomicU32::new(0);
/// When the storm ends, on the virtual counter.
static STORM_END: AtomicU64 = AtomicU64::new(0);

fn storm_irq() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == timer::INTERRUPT {
        STORM.fetch_add(1, Ordering::Relaxed);
        // Re-arm for "now", the shortest interval there is, until the
        // storm's end; the handler itself must stop it (the interrupt is
        // taken again before the interrupted code runs one instruction).
        if timer::now() < STORM_END.load(Ordering::Relaxed) {
            timer::arm_at(timer::now());
        } else {
            timer::disarm();
        }
    }
    if iar & 0x3ff != gic::SPURIOUS {
        gic::end(iar);
    }
}

/// How long the guest sleeps before the attack, and how long the attack
/// goes on at least (whole rounds), in milliseconds.
const SLEEP_MS: u64 = 300;
const ATTACK_MS: u64 = 600;

fn main() -> u32 {
    let mut tally = Tally {
        section: 0,
        tried: [0; SECTIONS],
        contained: 0,
    };
    let mut checks = Checks::new();
    // Asleep at first: the victim's solo baseline.
    let frequency = u64::from(timer::frequency());
    sleep_until(timer::now() + frequency * SLEEP_MS / 1000);
    let attack_start = now_us();
    let mut seed = 0x1234_5678u32;
    let mut rounds = 0;
    // A VM called 'hostile-soak' attacks until it is stopped (make soak).
    let (_, name, length) = capvisor_test_guests::vm_identity();
    if &name[..length] == b"hostile-smp" {
        return smp_attack();
    }
    let endless = &name[..length] == b"hostile-soak";
    while endless || now_us() - attack_start < ATTACK_MS * 1000 {
        attack(&mut tally, &mut seed);
        rounds += 1;
    }
    println!(
        "hostile: attack from {} us to {} us, {} rounds",
        attack_start,
        now_us(),
        rounds
    );
    println!(
        "hostile: {} data aborts taken",
        ABORTS.load(Ordering::Relaxed)
    );
    let [probes, syndromeless, cache, calls, registers, storms, virtqueues] = tally.tried;
    println!(
        "hostile: cases per section: probes {}, syndromeless {}, cache {}, calls {}, registers {}, storms {}, virtqueues {}",
        probes, syndromeless, cache, calls, registers, storms, virtqueues
    );
    println!(
        "hostile: {} cases tried, {} contained",
        tally.tried(),
        tally.contained
    );
    checks.equal("every case contained", tally.contained, tally.tried());
    checks.finish("hostile")
}

/// One round of every attack; `seed` carries the random values on.
fn attack(tally: &mut Tally, seed: &mut u32) {
    // 1. Reads and writes everywhere it does not own: the addresses of
    // the host's layout, then one in every MiB of the 4 GiB IPA space but
    // its own RAM (half a MiB in, clear of the devices' windows).
    tally.section = 0;
    for &address in &PROBES {
        tally.case(aborts(|| load(address)));
        tally.case(aborts(|| store(address)));
    }
    for mib in (0..4096u32).filter(|mib| !OWN_RAM_MIB.contains(mib)) {
        let address = (mib << 20) | 0x8_0000;
        tally.case(aborts(|| load(address)));
        tally.case(aborts(|| store(address)));
    }
    // 2. Accesses with no syndrome (LDM, STM, exclusives) aimed at the
    // emulated devices: the hypervisor cannot emulate them, so they abort.
    // Unaligned word loads and halfword stores: alignment faults, as real
    // Device memory gives.
    // Where the GIC CPU interface window is the hardware's own virtual CPU
    // interface (GICV on QEMU virt, mapped by stage 2), such accesses reach
    // this VM's own GICV and complete: that is contained too, but nothing
    // else (another exception) is.
    tally.section = 1;
    for &device in &DEVICES {
        let syndromeless = |access: fn(u32)| {
            if device == DEVICES[2] {
                outcome(|| access(device))
                    .is_none_or(|exception| exception.vector == vector::DATA_ABORT)
            } else {
                aborts(|| access(device))
            }
        };
        tally.case(syndromeless(load_multiple));
        tally.case(syndromeless(store_multiple));
        tally.case(syndromeless(load_exclusive));
        // Unaligned: the hypervisor gives an emulated device's access an
        // alignment fault; QEMU's GICV completes it (its own window).
        let unaligned = |access: &dyn Fn()| {
            if device == DEVICES[2] {
                outcome(access).is_none_or(|exception| exception.vector == vector::DATA_ABORT)
            } else {
                alignment_fault(access)
            }
        };
        for misalignment in 1..4 {
            tally.case(unaligned(&|| load(device + misalignment)));
        }
        tally.case(unaligned(&|| store_halfword(device + 1)));
    }
    // 3. Cache maintenance. By set/way over every level (no address, so
    // nothing to trap: the sweep must simply finish, with no exception).
    // By address at the devices and at every probed address: a no-op or
    // an abort, never anything else.
    tally.section = 2;
    for op in [
        CacheOp::Invalidate,
        CacheOp::Clean,
        CacheOp::CleanInvalidate,
    ] {
        let mut lines = 0;
        let exception = expect_exception(|| lines = sweep_by_set_way(op));
        tally.case(exception.is_none() && lines > 0);
        for &address in DEVICES.iter().chain(&PROBES) {
            let exception = outcome(|| by_address(op, address));
            tally.case(exception.is_none_or(|exception| exception.vector == vector::DATA_ABORT));
        }
    }
    // 4. Hypercalls across every SMCCC owner, fast and yielding, 32 and 64
    // bit, with hostile arguments, at function number 0xff, which nobody
    // implements: each must answer NOT_SUPPORTED. The same by SMC, which
    // must answer the same or, on a CPU without the Security Extensions
    // (QEMU's Cortex-A15 here), be undefined.
    tally.section = 3;
    for owner in 0..64u32 {
        for &kind in &[0x8000_0000u32, 0xc000_0000, 0x0000_0000] {
            let function = kind | (owner << 24) | 0x00ff;
            for &argument in &[0, u32::MAX, 0x0001_0000] {
                let [r0, ..] = hvc(function, [argument; 7]);
                tally.case(r0 == psci::NOT_SUPPORTED);
                let mut r0 = 0;
                let exception = outcome(|| r0 = smc(function, [argument; 3])[0]);
                tally.case(match exception {
                    Some(exception) => exception.vector == vector::UNDEFINED,
                    None => r0 == psci::NOT_SUPPORTED,
                });
            }
        }
    }
    // 5. Random values into every register of the UART and the GIC: each
    // write must be absorbed (the devices answer every aligned word access,
    // so none may abort), and afterwards the registers the architecture
    // makes read-only must read as before (checked below).
    tally.section = 4;
    let fixed_before = read_only_registers();
    for (base, size) in [
        (DEVICES[0] as usize, 0x1000usize),
        (DEVICES[1] as usize, 0x1000),
        (DEVICES[2] as usize, 0x2000),
    ] {
        for offset in (0..size).step_by(4) {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 17;
            *seed ^= *seed << 5;
            // Keep the distributor enabled-bit and the UART's DR quiet-ish.
            let value = if offset == 0 { *seed & !1 } else { *seed };
            // SAFETY: the emulated devices' windows.
            tally.case(outcome(|| unsafe { write32(base + offset, value) }).is_none());
        }
    }
    for (before, after) in fixed_before.iter().zip(read_only_registers()) {
        tally.case(*before == after);
    }
    // Calm the GIC down again before the storm: nothing active or pending,
    // and the PPIs level-sensitive again (the random values made some
    // edge-triggered, and a timer line that never drops gives an edge
    // interrupt once).
    gic::cpu_write(0xd0, 0);
    for offset in [0x180usize, 0x184, 0x280, 0x284, 0x380, 0x384] {
        // Every interrupt the random values enabled, pending or active:
        // disabled and cleared (only the timer is enabled again below).
        gic::distributor_write(offset, u32::MAX);
    }
    // And the UART: no interrupt unmasked or pending (a transmit
    // interrupt left unmasked is always asserted, a level that would keep
    // this guest in its IRQ handler), enabled for transmit and receive.
    // SAFETY: the emulated UART's IMSC, ICR and CR.
    unsafe {
        write32(0x0900_0038, 0);
        write32(0x0900_0044, 0x7ff);
        write32(0x0900_0030, 0x0301);
    }
    gic::distributor_write(0xc04, 0);
    // 6. An interrupt storm: the timer re-armed at once, 100 ms long,
    // while the UART is flooded.
    gic::init(&[timer::INTERRUPT]);
    set_irq_handler(storm_irq);
    let end = timer::now() + u64::from(timer::frequency()) / 10;
    STORM_END.store(end, Ordering::Relaxed);
    timer::arm_at(timer::now());
    while timer::now() < end {
        enable_irqs();
        disable_irqs();
        // SAFETY: the emulated UART's DR: a flood of output.
        unsafe { write32(0x0900_0000, u32::from(b'.')) };
    }
    timer::disarm();
    println!();
    let storms = STORM.swap(0, Ordering::Relaxed);
    println!("hostile: {} timer interrupts in a 100 ms storm", storms);
    tally.section = 5;
    tally.case(storms > 10);
    drain_pending();
    // 7. The virtio-blk disk: its transport and its virtqueue (a VM
    // without a disk in slot 0 skips this).
    tally.section = 6;
    virtqueues::attack(tally);
}

/// Registers the architecture makes read-only, which no write may change:
/// the distributor's GICD_TYPER and GICD_IIDR, the SGIs' configuration
/// (GICD_ICFGR0: always edge) and their targets (GICD_ITARGETSR0-3: this
/// CPU), and the PL011's eight identification registers.
fn read_only_registers() -> [u32; 15] {
    let mut values = [0u32; 15];
    let offsets = [0x004usize, 0x008, 0xc00, 0x800, 0x804, 0x808, 0x80c];
    for (value, offset) in values.iter_mut().zip(offsets) {
        *value = gic::distributor_read(offset);
    }
    for (n, value) in values[7..].iter_mut().enumerate() {
        // SAFETY: the emulated UART's identification registers.
        *value = unsafe { read32(0x0900_0fe0 + 4 * n) };
    }
    values
}

/// Acknowledges anything left pending so the exit is clean.
fn drain_pending() {
    for _ in 0..16 {
        let iar = gic::acknowledge();
        if iar & 0x3ff == gic::SPURIOUS {
            break;
        }
        gic::end(iar);
    }
}

/// How long the SMP attack goes on (whole rounds), in milliseconds.
const SMP_ATTACK_MS: u64 = 1500;

/// One kind of case in the SMP attack: how many were tried and failed,
/// and the first failure (what was tried, what came back).
struct Kind {
    what: &'static str,
    tried: u32,
    failed: u32,
    first_failure: Option<(u32, u32)>,
}

impl Kind {
    const fn new(what: &'static str) -> Kind {
        Kind {
            what,
            tried: 0,
            failed: 0,
            first_failure: None,
        }
    }

    /// A case: `case` names it (an id, an address, a vCPU), `got` is what
    /// came back, `ok` whether that is contained.
    fn case(&mut self, ok: bool, case: u32, got: u32) {
        self.tried += 1;
        if !ok {
            self.failed += 1;
            self.first_failure.get_or_insert((case, got));
        }
    }

    /// Prints the line `hostile-smp: <tried> <what>, <failed> failed` (and
    /// the first failure, if any) and checks that none failed.
    fn report(&self, checks: &mut Checks) {
        println!(
            "hostile-smp: {} {}, {} failed",
            self.tried, self.what, self.failed
        );
        if let Some((case, got)) = self.first_failure {
            println!(
                "hostile-smp: first failure of {}: case {:#x} got {:#x}",
                self.what, case, got
            );
        }
        checks.equal(self.what, self.failed, 0);
    }
}

/// The SMP attack's cases, by kind.
struct SmpCases {
    sgir: Kind,
    sgi_pending: Kind,
    cpu_on_absent: Kind,
    affinity_absent: Kind,
    cpu_on_self: Kind,
    gicd_writes: Kind,
    targets: Kind,
}

/// The SMP attack of a VM with one vCPU, for [`SMP_ATTACK_MS`] of its
/// virtual counter: rounds of [`smp_round`]. Returns the exit status.
fn smp_attack() -> u32 {
    let mut cases = SmpCases {
        sgir: Kind::new("GICD_SGIR writes"),
        sgi_pending: Kind::new("SGI pending-state reads"),
        cpu_on_absent: Kind::new("CPU_ON of absent vCPUs"),
        affinity_absent: Kind::new("AFFINITY_INFO of absent vCPUs"),
        cpu_on_self: Kind::new("CPU_ON of itself"),
        gicd_writes: Kind::new("GICD writes of all ones"),
        targets: Kind::new("GICD_ITARGETSR reads"),
    };
    let mut seed = 0x9e37_79b9u32;
    let start = now_us();
    let mut rounds = 0;
    while now_us() - start < SMP_ATTACK_MS * 1000 {
        smp_round(&mut cases, &mut seed);
        rounds += 1;
    }
    drain_pending();
    println!(
        "hostile-smp: attack from {} us to {} us, {} rounds",
        start,
        now_us(),
        rounds
    );
    let mut checks = Checks::new();
    for kind in [
        &cases.sgir,
        &cases.sgi_pending,
        &cases.cpu_on_absent,
        &cases.affinity_absent,
        &cases.cpu_on_self,
        &cases.gicd_writes,
        &cases.targets,
    ] {
        kind.report(&mut checks);
    }
    checks.finish("hostile-smp")
}

/// A distributor write that must be absorbed (no exception); returns
/// whether it was.
fn absorbed(offset: usize, value: u32) -> bool {
    outcome(|| gic::distributor_write(offset, value)).is_none()
}

/// The four GICD_SPENDSGIR words ORed: a byte per SGI, a bit per source.
fn pending_sgis() -> u32 {
    (0..4).fold(0, |pending, word| {
        pending | gic::distributor_read(gic::SPENDSGIR + 4 * word)
    })
}

/// Clears every SGI's pending state from every source (GICD_CPENDSGIR).
fn clear_sgis() {
    for word in 0..4 {
        gic::distributor_write(gic::CPENDSGIR + 4 * word, u32::MAX);
    }
}

/// One round of the SMP attack.
fn smp_round(cases: &mut SmpCases, seed: &mut u32) {
    // 1. Every SGI to all the other CPUs (target filter 1): there are
    // none, so nothing may become pending, here or anywhere.
    clear_sgis();
    for sgi in 0..16 {
        let value = (1 << 24) | sgi;
        cases.sgir.case(absorbed(gic::SGIR, value), value, 0);
    }
    let pending = pending_sgis();
    cases.sgi_pending.case(pending == 0, 1 << 24, pending);
    // Every SGI to the target list 0xff (filter 0): only this vCPU
    // exists, so each SGI is pending here, from this vCPU (source bit 0)
    // and no other.
    for sgi in 0..16 {
        let value = (0xff << 16) | sgi;
        cases.sgir.case(absorbed(gic::SGIR, value), value, 0);
    }
    let pending = pending_sgis();
    cases
        .sgi_pending
        .case(pending & !0x0101_0101 == 0, 0xff << 16, pending);
    clear_sgis();

    // 2. PSCI for vCPUs it does not have: MPIDR affinity 1 to 7 (Aff0)
    // and some with higher affinity levels, each with the trampoline, a
    // random address and two impossible ones as the entry point: all
    // INVALID_PARAMETERS, as is AFFINITY_INFO of each. CPU_ON of itself
    // (vCPU 0, running): ALREADY_ON.
    for target in (1..=7).chain([0x100, 0x1_0000, 0x00ff_ffff]) {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        for entry in [smp::entry_address(), *seed, 0, 0xffff_fffd] {
            let answer = smp::cpu_on(target, entry, *seed);
            cases
                .cpu_on_absent
                .case(answer == psci::INVALID_PARAMETERS, target, answer as u32);
        }
        let answer = smp::affinity_info(target);
        cases
            .affinity_absent
            .case(answer == psci::INVALID_PARAMETERS, target, answer as u32);
    }
    let answer = smp::cpu_on(0, smp::entry_address(), 0);
    cases
        .cpu_on_self
        .case(answer == psci::ALREADY_ON, 0, answer as u32);

    // 3. All ones into every interrupt-target word (GICD_ITARGETSR0-255:
    // every CPU for every interrupt), every set-pending and every
    // set-enable word: absorbed, each.
    for word in 0..256 {
        let offset = gic::ITARGETSR + 4 * word;
        cases
            .gicd_writes
            .case(absorbed(offset, u32::MAX), offset as u32, 0);
    }
    for word in 0..32 {
        for base in [0x200usize, 0x100] {
            let offset = base + 4 * word;
            cases
                .gicd_writes
                .case(absorbed(offset, u32::MAX), offset as u32, 0);
        }
    }
    // The targets read back: the SGIs' and PPIs' (words 0-7) are this
    // vCPU, 0x01 in every byte; an SPI's may only name CPUs the VM has
    // (bit 0; 0 where no SPI is implemented).
    for word in 0..256 {
        let offset = gic::ITARGETSR + 4 * word;
        let targets = gic::distributor_read(offset);
        let ok = if word < 8 {
            targets == 0x0101_0101
        } else {
            targets & !0x0101_0101 == 0
        };
        cases.targets.case(ok, offset as u32, targets);
    }
    // Quiet again: every interrupt disabled, not pending and not active
    // (the targets may stay: there is only this vCPU to name).
    for word in 0..32 {
        for base in [0x180usize, 0x280, 0x380] {
            gic::distributor_write(base + 4 * word, u32::MAX);
        }
    }
    clear_sgis();
}
