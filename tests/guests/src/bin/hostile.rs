//! A hostile guest, beside a victim VM that must keep making progress:
//! it reads and writes every address it could guess (below its RAM, past
//! it, the host's RAM alias where the hypervisor and other VMs live, the
//! image staging area, the host's devices), aims LDM/STM and exclusive
//! accesses at emulated devices, calls HVC across every owner with hostile
//! arguments, writes random values to every register of its virtual UART
//! and GIC, and storms its own timer interrupt. Every case must be
//! contained: an abort injected into this guest, an architected error, or
//! the access absorbed by the device. It prints how many cases it tried
//! and how many were contained.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, expect_exception, gic, hvc, println, psci, set_irq_handler, timer,
    vector, write32, Checks,
};
use core::sync::atomic::{AtomicU32, AtomicU64, Ordering};

capvisor_test_guests::guest!("hostile", main);

/// Addresses a guest might try: its IPA space outside its own RAM and
/// devices, including the host's physical layout (the hypervisor's image,
/// its devices, the other VMs' RAM and the staging area).
const PROBES: [u32; 16] = [
    0x0000_0000,
    0x0001_0000,
    0x0002_0000,
    0x0007_0000,
    0x1000_0000,
    0x1300_0000,
    0x1400_0000,
    0x1600_0000,
    0x1700_0000,
    0x3fff_fffc,
    0x4020_0000,
    0x8100_0000,
    0x8120_0000,
    0x9000_0000,
    0xb000_0000,
    0xffff_fffc,
];

struct Tally {
    tried: u32,
    contained: u32,
}

impl Tally {
    fn case(&mut self, contained: bool) {
        self.tried += 1;
        self.contained += u32::from(contained);
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

/// An access that must come back as a data abort at this guest's vector.
fn aborts(access: impl FnOnce()) -> bool {
    expect_exception(access).is_some_and(|exception| exception.vector == vector::DATA_ABORT)
}

static STORM: AtomicU32 = AtomicU32::new(0);
/// When the storm ends, on the virtual counter.
static STORM_END: AtomicU64 = AtomicU64::new(0);

fn storm_irq() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == 27 {
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

fn main() -> u32 {
    let mut tally = Tally {
        tried: 0,
        contained: 0,
    };
    let mut checks = Checks::new();
    // 1. Reads and writes everywhere it does not own.
    for &address in &PROBES {
        tally.case(aborts(|| load(address)));
        tally.case(aborts(|| store(address)));
    }
    // 2. Accesses with no syndrome (LDM, STM, exclusives) aimed at the
    // emulated devices: the hypervisor cannot emulate them, so they abort.
    for &device in &[0x0900_0000u32, 0x0800_0000, 0x0801_0000] {
        tally.case(aborts(|| load_multiple(device)));
        tally.case(aborts(|| store_multiple(device)));
        tally.case(aborts(|| load_exclusive(device)));
    }
    // 3. Hypercalls across every SMCCC owner, fast and yielding, 32 and 64
    // bit, with hostile arguments, at function number 0xff, which nobody
    // implements: each must answer NOT_SUPPORTED.
    for owner in 0..64u32 {
        for &kind in &[0x8000_0000u32, 0xc000_0000, 0x0000_0000] {
            let function = kind | (owner << 24) | 0x00ff;
            for &argument in &[0, u32::MAX, 0x0001_0000] {
                let [r0, ..] = hvc(function, [argument; 7]);
                tally.case(r0 == psci::NOT_SUPPORTED);
            }
        }
    }
    // 4. Random values into every register of the UART and the GIC
    // (absorbed: the devices answer every aligned word access).
    let mut seed = 0x1234_5678u32;
    for (base, size) in [
        (0x0900_0000usize, 0x1000usize),
        (0x0800_0000, 0x1000),
        (0x0801_0000, 0x2000),
    ] {
        for offset in (0..size).step_by(4) {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            // Keep the distributor enabled-bit and the UART's DR quiet-ish.
            let value = if offset == 0 { seed & !1 } else { seed };
            // SAFETY: the emulated devices' windows.
            unsafe { write32(base + offset, value) };
            tally.case(true);
        }
    }
    // Calm the GIC down again before the storm: nothing active or pending,
    // and the PPIs level-sensitive again (the random values made some
    // edge-triggered, and a timer line that never drops gives an edge
    // interrupt once).
    gic::cpu_write(0xd0, 0);
    for offset in [0x180usize, 0x280, 0x380] {
        gic::distributor_write(offset, u32::MAX);
    }
    gic::distributor_write(0xc04, 0);
    // 5. An interrupt storm: the timer re-armed at once, 100 ms long.
    gic::init(&[27]);
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
    let storms = STORM.load(Ordering::Relaxed);
    println!("hostile: {} timer interrupts in the 100 ms storm", storms);
    tally.case(storms > 10);
    drain_pending();
    println!(
        "hostile: {} cases tried, {} contained",
        tally.tried, tally.contained
    );
    checks.equal("every case contained", tally.contained, tally.tried);
    checks.finish("hostile")
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
