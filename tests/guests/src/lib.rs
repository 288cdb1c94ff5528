// SPDX-License-Identifier: MIT OR Apache-2.0
//! The runtime shared by Capvisor's bare-metal test guests.
//!
//! A test guest is a flat image linked at the guest RAM base (IPA
//! 0x4000_0000, see `guest.ld`) that starts with a header in the layout of
//! a Linux zImage (so the hypervisor needs one image format): a branch at
//! offset 0, the zImage magic 0x016f2818 at 0x24, its link address at 0x28,
//! the end of the loaded image at 0x2c and the little-endian marker at 0x30.
//! Test guests add `CVGU` at 0x34 and their NUL-padded name at 0x38 (16
//! bytes), so the hypervisor can refuse a guest loaded into the wrong slot.
//!
//! The runtime gives a guest:
//! - entry: own vector table (VBAR), stacks for SVC, abort, undefined, IRQ
//!   and FIQ mode, `.bss` cleared, then the guest's `main`;
//! - output through the virtual PL011 at 0x0900_0000 ([`print!`],
//!   [`println!`]);
//! - hypercalls ([`hvc`], [`smc`]) and the calls Capvisor and PSCI offer;
//! - exceptions: every vector saves the registers and records what
//!   happened; a test can expect one ([`expect_exception`],
//!   [`expect_prefetch_abort`]) and carry on; an unexpected one fails the
//!   guest;
//! - [`exit`]: reports the status through the hypervisor service, then
//!   powers off through PSCI SYSTEM_OFF. Status 0 means the guest passed;
//! - secondary vCPUs ([`smp`]): started by PSCI CPU_ON at a trampoline that
//!   gives each its own stacks (up to 4 vCPUs), the same vectors and its
//!   own IRQ handler; console lines from several vCPUs do not interleave.
//!
//! A guest binary is `#![no_std] #![no_main]` with
//! `capvisor_test_guests::guest!("name", main);` and `fn main() -> u32`.
#![no_std]

use core::cell::UnsafeCell;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU32, Ordering};

/// The virtual PL011's data register.
const UART_DR: usize = 0x0900_0000;
/// The virtual PL011's flag register.
const UART_FR: usize = 0x0900_0018;
/// FR.TXFF: transmit FIFO full.
const FR_TXFF: u32 = 1 << 5;

/// PSCI 0.2 function ids (SMC32 calling convention).
pub mod psci {
    /// PSCI_VERSION.
    pub const VERSION: u32 = 0x8400_0000;
    /// CPU_OFF.
    pub const CPU_OFF: u32 = 0x8400_0002;
    /// CPU_ON (SMC32): r1 = target MPIDR, r2 = entry, r3 = context.
    pub const CPU_ON: u32 = 0x8400_0003;
    /// AFFINITY_INFO (SMC32): r1 = target MPIDR, r2 = affinity level (0).
    pub const AFFINITY_INFO: u32 = 0x8400_0004;
    /// MIGRATE_INFO_TYPE.
    pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
    /// SYSTEM_OFF.
    pub const SYSTEM_OFF: u32 = 0x8400_0008;
    /// SYSTEM_RESET.
    pub const SYSTEM_RESET: u32 = 0x8400_0009;
    /// PSCI_FEATURES.
    pub const FEATURES: u32 = 0x8400_000a;
    /// NOT_SUPPORTED (-1).
    pub const NOT_SUPPORTED: u32 = -1i32 as u32;
    /// SUCCESS (0).
    pub const SUCCESS: i32 = 0;
    /// INVALID_PARAMETERS (-2).
    pub const INVALID_PARAMETERS: i32 = -2;
    /// ALREADY_ON (-4).
    pub const ALREADY_ON: i32 = -4;
    /// ON_PENDING (-5).
    pub const ON_PENDING: i32 = -5;
    /// AFFINITY_INFO: the vCPU is on.
    pub const AFFINITY_ON: i32 = 0;
    /// AFFINITY_INFO: the vCPU is off.
    pub const AFFINITY_OFF: i32 = 1;
    /// AFFINITY_INFO: the vCPU is being turned on.
    pub const AFFINITY_ON_PENDING: i32 = 2;
}

/// Capvisor's hypervisor service (vendor-specific hypervisor range).
pub mod service {
    /// VERSION.
    pub const VERSION: u32 = 0x8600_0000;
    /// VM_ID.
    pub const VM_ID: u32 = 0x8600_0001;
    /// VM_NAME.
    pub const VM_NAME: u32 = 0x8600_0002;
    /// CONSOLE_WRITE.
    pub const CONSOLE_WRITE: u32 = 0x8600_0003;
    /// EXIT_STATUS.
    pub const EXIT_STATUS: u32 = 0x8600_0004;
    /// YIELD.
    pub const YIELD: u32 = 0x8600_0005;
    /// BOOT_COUNT: 1 on the first boot, one more at each restart.
    pub const BOOT_COUNT: u32 = 0x8600_0006;
    /// INVALID_PARAMETERS (-2).
    pub const INVALID_PARAMETERS: u32 = -2i32 as u32;
}

/// Declares the guest: its name (at most 16 bytes, written into the image
/// header) and its `main`, whose return value is the exit status.
#[macro_export]
macro_rules! guest {
    ($name:literal, $main:path) => {
        #[link_section = ".text.head.name"]
        #[no_mangle]
        #[used]
        static __guest_name: [u8; 16] = $crate::pad_name($name);

        #[no_mangle]
        extern "C" fn __guest_main() -> u32 {
            $main()
        }
    };
}

/// `name` NUL-padded to the header's 16 bytes (compile error if longer).
pub const fn pad_name(name: &str) -> [u8; 16] {
    let bytes = name.as_bytes();
    assert!(bytes.len() <= 16, "a guest name has at most 16 bytes");
    let mut padded = [0u8; 16];
    let mut i = 0;
    while i < bytes.len() {
        padded[i] = bytes[i];
        i += 1;
    }
    padded
}

core::arch::global_asm!(
    r#"
    .arm
    .section .text.head, "ax"
    .global _start
_start:
    b       __reset                 @ 0x00: jump over the header
    .rept 8
    mov     r0, r0                  @ 0x04-0x23: padding, as in a zImage
    .endr
    .word   0x016f2818              @ 0x24: zImage magic
    .word   _start                  @ 0x28: the address the image runs at
    .word   __image_end             @ 0x2c: end of the image
    .word   0x04030201              @ 0x30: little-endian marker
    .ascii  "CVGU"                  @ 0x34: test-guest magic; name at 0x38

    .section .text.__reset, "ax"
__reset:
    @ r0-r2 hold the Linux boot arguments (0, ~0, DTB): not needed here.
    ldr     r0, =__vectors
    mcr     p15, 0, r0, c12, c0, 0  @ VBAR := our vector table
    cps     #0x17                   @ abort mode: its own stack
    ldr     sp, =__abt_stack_top
    cps     #0x1b                   @ undefined mode
    ldr     sp, =__und_stack_top
    cps     #0x12                   @ IRQ mode
    ldr     sp, =__irq_stack_top
    cps     #0x11                   @ FIQ mode
    ldr     sp, =__fiq_stack_top
    cps     #0x13                   @ back to SVC, where the guest runs
    ldr     sp, =__svc_stack_top
    isb
    ldr     r0, =__bss_start        @ clear .bss: r0 = cursor, r1 = end
    ldr     r1, =__bss_end
    mov     r2, #0
1:  cmp     r0, r1
    strlo   r2, [r0], #4
    blo     1b
    bl      __guest_main            @ r0 := the guest's status
    bl      {exit}                  @ never returns
    .ltorg

    @ The vector table (VBAR needs 32-byte alignment); global, as the
    @ secondary vCPUs' trampoline (smp) points VBAR at it too.
    .section .text.__vectors, "ax"
    .balign 32
    .global __vectors
__vectors:
    b       __vector_reset          @ 0x00
    b       __vector_undefined      @ 0x04
    b       __vector_svc            @ 0x08
    b       __vector_prefetch_abort @ 0x0c
    b       __vector_data_abort     @ 0x10
    b       __vector_reset          @ 0x14: not used
    b       __vector_irq            @ 0x18
    b       __vector_fiq            @ 0x1c

    @ Each vector saves r0-r12 and its LR on the mode's stack, with r0 =
    @ what happened (the vector offset / 4), and goes to the common path.
    .macro vector_entry name, number
\name:
    stmdb   sp!, {{r0-r12, lr}}
    mov     r0, #\number
    b       __vector_common
    .endm
    vector_entry __vector_reset, 0
    vector_entry __vector_undefined, 1
    vector_entry __vector_svc, 2
    vector_entry __vector_prefetch_abort, 3
    vector_entry __vector_data_abort, 4
    vector_entry __vector_irq, 6
    vector_entry __vector_fiq, 7

    @ r0 = vector, r1 = the saved frame (r0-r12, lr), r2 = SPSR. The
    @ handler may change the frame's lr: that is where the guest resumes,
    @ with the CPSR from SPSR (movs pc, lr).
__vector_common:
    mov     r1, sp
    mrs     r2, spsr
    bl      {handler}
    ldmia   sp!, {{r0-r12, lr}}
    movs    pc, lr
"#,
    exit = sym exit_from_asm,
    handler = sym guest_exception,
);

/// A cell one vCPU shares between its program and its exception handlers.
/// Only one vCPU ever uses a given cell (see [`PerCpu`]) and its handlers
/// never nest, so plain volatile access is enough.
struct Shared<T>(UnsafeCell<T>);

// SAFETY: each cell belongs to one vCPU (PerCpu hands out the caller's
// own); on that vCPU the program and a handler never run at the same time.
unsafe impl<T> Sync for Shared<T> {}

impl<T: Copy> Shared<T> {
    const fn new(value: T) -> Self {
        Shared(UnsafeCell::new(value))
    }
    fn get(&self) -> T {
        // SAFETY: see the Sync impl.
        unsafe { core::ptr::read_volatile(self.0.get()) }
    }
    fn set(&self, value: T) {
        // SAFETY: see the Sync impl.
        unsafe { core::ptr::write_volatile(self.0.get(), value) }
    }
    fn address(&self) -> *mut T {
        self.0.get()
    }
}

/// One [`Shared`] cell per vCPU: each vCPU reads and writes its own
/// ([`smp::current`]), so the runtime's exception state (the IRQ handler,
/// an expected exception, where to resume) is per vCPU, and a guest with
/// one vCPU uses the first cell only, as before there were several.
struct PerCpu<T>([Shared<T>; smp::MAX_VCPUS]);

impl<T: Copy> PerCpu<T> {
    const fn new(value: T) -> Self {
        PerCpu([
            Shared::new(value),
            Shared::new(value),
            Shared::new(value),
            Shared::new(value),
        ])
    }
    /// The calling vCPU's cell.
    fn mine(&self) -> &Shared<T> {
        &self.0[smp::index()]
    }
    fn get(&self) -> T {
        self.mine().get()
    }
    fn set(&self, value: T) {
        self.mine().set(value)
    }
    fn address(&self) -> *mut T {
        self.mine().address()
    }
}

/// What a guest exception looked like from inside the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Exception {
    /// Vector offset / 4: 1 undefined, 3 prefetch abort, 4 data abort, ...
    pub vector: u32,
    /// The exception mode's LR.
    pub lr: u32,
    /// The exception mode's SPSR (the CPSR when it was taken).
    pub spsr: u32,
    /// DFSR and DFAR at the time.
    pub dfsr: u32,
    /// DFAR.
    pub dfar: u32,
    /// IFSR.
    pub ifsr: u32,
    /// IFAR.
    pub ifar: u32,
}

/// Vector numbers of [`Exception::vector`].
pub mod vector {
    /// Undefined instruction.
    pub const UNDEFINED: u32 = 1;
    /// Prefetch abort.
    pub const PREFETCH_ABORT: u32 = 3;
    /// Data abort.
    pub const DATA_ABORT: u32 = 4;
    /// IRQ.
    pub const IRQ: u32 = 6;
}

/// How the handler resumes an expected exception.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resume {
    /// No exception is expected: report it and fail.
    Unexpected,
    /// Skip the instruction that caused it.
    NextInstruction,
    /// Continue at the address in `RESUME_AT`.
    AtLabel,
}

static RESUME: PerCpu<Resume> = PerCpu::new(Resume::Unexpected);
/// Each vCPU's IRQ handler, if it installed one ([`set_irq_handler`]).
static IRQ_HANDLER: PerCpu<Option<fn()>> = PerCpu::new(None);
static LAST: PerCpu<Option<Exception>> = PerCpu::new(None);
/// Where [`expect_prefetch_abort`] resumes (written by its assembly).
static RESUME_AT: PerCpu<u32> = PerCpu::new(0);

/// The registers a vector saved.
#[repr(C)]
#[derive(Debug)]
struct Frame {
    r: [u32; 13],
    lr: u32,
}

fn read_cp15_fault_registers() -> (u32, u32, u32, u32) {
    let (dfsr, dfar, ifsr, ifar): (u32, u32, u32, u32);
    // SAFETY: reading the fault status and address registers has no effect.
    unsafe {
        core::arch::asm!(
            "mrc p15, 0, {0}, c5, c0, 0",
            "mrc p15, 0, {1}, c6, c0, 0",
            "mrc p15, 0, {2}, c5, c0, 1",
            "mrc p15, 0, {3}, c6, c0, 2",
            out(reg) dfsr, out(reg) dfar, out(reg) ifsr, out(reg) ifar,
            options(nomem, nostack)
        )
    };
    (dfsr, dfar, ifsr, ifar)
}

extern "C" fn guest_exception(vector: u32, frame: &mut Frame, spsr: u32) {
    if vector == vector::IRQ {
        if let Some(handler) = IRQ_HANDLER.get() {
            handler();
            // An IRQ's LR is the interrupted instruction + 4.
            frame.lr -= 4;
            return;
        }
    }
    let (dfsr, dfar, ifsr, ifar) = read_cp15_fault_registers();
    let exception = Exception {
        vector,
        lr: frame.lr,
        spsr,
        dfsr,
        dfar,
        ifsr,
        ifar,
    };
    LAST.set(Some(exception));
    match RESUME.get() {
        Resume::Unexpected => {
            println!(
                "unexpected exception: vector {:#x}, lr {:#010x}, spsr {:#x}, dfsr {:#x}, dfar {:#010x}, ifsr {:#x}, ifar {:#010x}",
                vector * 4, frame.lr, spsr, dfsr, dfar, ifsr, ifar
            );
            exit(0xe0 + vector);
        }
        // A data abort's LR is the faulting instruction + 8; an undefined
        // instruction's (ARM state) is the instruction + 4.
        Resume::NextInstruction if vector == vector::DATA_ABORT => frame.lr -= 4,
        Resume::NextInstruction => {}
        Resume::AtLabel => frame.lr = RESUME_AT.get(),
    }
    RESUME.set(Resume::Unexpected);
}

/// Runs `f`, which must take exactly one synchronous exception (a data
/// abort or undefined instruction) and resume after the instruction that
/// took it. Returns what the handler saw, or `None` if nothing happened.
pub fn expect_exception(f: impl FnOnce()) -> Option<Exception> {
    LAST.set(None);
    RESUME.set(Resume::NextInstruction);
    f();
    RESUME.set(Resume::Unexpected);
    LAST.get()
}

/// Branches to `target`, which must take a prefetch abort; returns what the
/// abort handler saw (the guest resumes right after the branch).
pub fn expect_prefetch_abort(target: u32) -> Option<Exception> {
    LAST.set(None);
    RESUME.set(Resume::AtLabel);
    // SAFETY: the branch target aborts; the handler resumes at label 2 with
    // every register restored from its frame (SP and LR of SVC mode were
    // never changed), so this block behaves like a no-op.
    unsafe {
        core::arch::asm!(
            "adr {tmp}, 2f",
            "str {tmp}, [{slot}]",
            "bx {target}",
            "2:",
            tmp = out(reg) _,
            slot = in(reg) RESUME_AT.address(),
            target = in(reg) target,
        )
    };
    RESUME.set(Resume::Unexpected);
    LAST.get()
}

/// Installs `handler` for the calling vCPU's IRQs (it runs in IRQ mode,
/// on that vCPU's IRQ stack, with IRQs masked, and must acknowledge the
/// interrupt at the GIC); the guest still has to unmask IRQs
/// ([`enable_irqs`]). Each vCPU installs its own.
pub fn set_irq_handler(handler: fn()) {
    IRQ_HANDLER.set(Some(handler));
}

/// Unmasks IRQs (CPSR.I := 0).
pub fn enable_irqs() {
    // SAFETY: the runtime's IRQ vector is installed.
    unsafe { core::arch::asm!("cpsie i", options(nomem, nostack)) };
}

/// Masks IRQs (CPSR.I := 1).
pub fn disable_irqs() {
    // SAFETY: masking interrupts has no other effect.
    unsafe { core::arch::asm!("cpsid i", options(nomem, nostack)) };
}

/// Waits for an interrupt (WFI).
pub fn wait_for_interrupt() {
    // SAFETY: WFI only waits.
    unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
}

/// Set by [`sleep_until`]'s interrupt handler.
static WOKEN: PerCpu<bool> = PerCpu::new(false);

fn wake_on_timer() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == timer::INTERRUPT {
        timer::disarm();
        WOKEN.set(true);
    }
    if iar & 0x3ff != gic::SPURIOUS {
        gic::end(iar);
    }
}

/// Sleeps until the virtual counter reaches `deadline`: enables the timer
/// interrupt at the GIC, installs its own IRQ handler (replacing the
/// guest's), arms the timer and waits with IRQs masked, so that no wake-up
/// is lost between the check and the WFI (WFI still wakes on a pending
/// interrupt), taking the interrupt after each wake-up. Returns how many
/// times the CPU woke; IRQs are masked again on return.
pub fn sleep_until(deadline: u64) -> u32 {
    gic::init(&[timer::INTERRUPT]);
    set_irq_handler(wake_on_timer);
    WOKEN.set(false);
    timer::arm_at(deadline);
    let mut wakeups = 0;
    while !WOKEN.get() {
        wait_for_interrupt();
        wakeups += 1;
        enable_irqs();
        disable_irqs();
    }
    wakeups
}

/// Gives the rest of this VM's time slice to the other VMs (Capvisor's
/// YIELD hypercall).
pub fn yield_now() {
    hvc(service::YIELD, [0; 7]);
}

/// The generic timer: the guest's virtual counter and virtual timer.
pub mod timer {
    /// The virtual timer's interrupt id (a PPI).
    pub const INTERRUPT: u32 = 27;

    /// CNTFRQ: counter ticks per second.
    pub fn frequency() -> u32 {
        let value: u32;
        // SAFETY: reading CNTFRQ has no side effects.
        unsafe {
            core::arch::asm!("mrc p15, 0, {}, c14, c0, 0", out(reg) value, options(nomem, nostack))
        };
        value
    }

    /// CNTVCT: the virtual counter.
    pub fn now() -> u64 {
        let (low, high): (u32, u32);
        // SAFETY: reading CNTVCT has no side effects; the ISB orders it.
        unsafe {
            core::arch::asm!("isb", "mrrc p15, 1, {}, {}, c14", out(reg) low, out(reg) high, options(nomem, nostack))
        };
        (u64::from(high) << 32) | u64::from(low)
    }

    /// Arms the virtual timer to fire at `deadline` (CNTV_CVAL), unmasked.
    pub fn arm_at(deadline: u64) {
        let (low, high) = (deadline as u32, (deadline >> 32) as u32);
        // SAFETY: the guest's own virtual timer.
        unsafe {
            core::arch::asm!(
                "mcrr p15, 3, {}, {}, c14",
                "mcr p15, 0, {}, c14, c3, 1",
                "isb",
                in(reg) low, in(reg) high, in(reg) 1u32,
                options(nomem, nostack)
            )
        };
    }

    /// Whether this vCPU's own virtual timer is enabled and has reached its
    /// deadline (CNTV_CTL.ENABLE and ISTATUS): what raises its interrupt.
    pub fn fired() -> bool {
        let control: u32;
        // SAFETY: reading CNTV_CTL has no side effects.
        unsafe {
            core::arch::asm!("mrc p15, 0, {}, c14, c3, 1", out(reg) control, options(nomem, nostack))
        };
        control & 0b101 == 0b101
    }

    /// Disables the virtual timer (CNTV_CTL := 0).
    pub fn disarm() {
        // SAFETY: the guest's own virtual timer.
        unsafe {
            core::arch::asm!("mcr p15, 0, {}, c14, c3, 1", "isb", in(reg) 0u32, options(nomem, nostack))
        };
    }
}

/// The virtual GICv2 at 0x0800_0000 (distributor) and 0x0801_0000 (CPU
/// interface).
pub mod gic {
    use super::{read32, write32};

    /// Distributor base.
    pub const GICD: usize = 0x0800_0000;
    /// CPU interface base.
    pub const GICC: usize = 0x0801_0000;
    /// The spurious interrupt id.
    pub const SPURIOUS: u32 = 1023;
    /// GICD_TYPER.
    pub const TYPER: usize = 0x004;
    /// GICD_ITARGETSR0 (one byte per interrupt).
    pub const ITARGETSR: usize = 0x800;
    /// GICD_SGIR.
    pub const SGIR: usize = 0xf00;
    /// GICD_CPENDSGIR0 (one byte per SGI, one bit per source CPU).
    pub const CPENDSGIR: usize = 0xf10;
    /// GICD_SPENDSGIR0.
    pub const SPENDSGIR: usize = 0xf20;

    /// Enables the distributor and the calling vCPU's CPU interface with
    /// every priority unmasked, and interrupt `id` at priority 0xa0. The
    /// registers of SGIs and PPIs (ids below 32) are each vCPU's own, so
    /// every vCPU calls this for its own.
    pub fn init(ids: &[u32]) {
        // SAFETY: the virtual GIC's registers.
        unsafe {
            write32(GICD, 1); // GICD_CTLR: enable
            for &id in ids {
                let byte = GICD + 0x400 + id as usize;
                let word = byte & !3;
                let shift = (byte & 3) * 8;
                let priority = read32(word) & !(0xff << shift);
                write32(word, priority | (0xa0 << shift)); // IPRIORITYR
                write32(GICD + 0x100 + 4 * (id as usize / 32), 1 << (id % 32)); // ISENABLER
            }
        }
        init_cpu_interface();
    }

    /// Enables the calling vCPU's CPU interface with every priority
    /// unmasked (GICC_PMR := 0xff, GICC_CTLR := 1).
    pub fn init_cpu_interface() {
        // SAFETY: the virtual GIC's registers (the CPU interface is each
        // vCPU's own).
        unsafe {
            write32(GICC + 0x4, 0xff); // GICC_PMR: everything
            write32(GICC, 1); // GICC_CTLR: enable
        }
    }

    /// The CPUs the distributor serves: GICD_TYPER.CPUNumber + 1 (the
    /// VM's vCPUs).
    pub fn cpu_count() -> u32 {
        ((distributor_read(TYPER) >> 5) & 7) + 1
    }

    /// Sends SGI `sgi` (0-15) to the vCPUs in `target_list` (bit n: vCPU
    /// n): GICD_SGIR with target filter 0 (the list).
    pub fn send_sgi(sgi: u32, target_list: u32) {
        distributor_write(SGIR, ((target_list & 0xff) << 16) | (sgi & 0xf));
    }

    /// The interrupt id in a GICC_IAR value.
    pub const fn interrupt_id(iar: u32) -> u32 {
        iar & 0x3ff
    }

    /// The sending vCPU in a GICC_IAR value of an SGI (bits 12:10).
    pub const fn source_cpu(iar: u32) -> u32 {
        (iar >> 10) & 7
    }

    /// Reads distributor register `offset`.
    pub fn distributor_read(offset: usize) -> u32 {
        // SAFETY: inside the virtual GIC's distributor window, which is
        // device emulation, not memory the program uses.
        unsafe { read32(GICD + offset) }
    }

    /// Writes distributor register `offset`.
    pub fn distributor_write(offset: usize, value: u32) {
        // SAFETY: as for `distributor_read`.
        unsafe { write32(GICD + offset, value) }
    }

    /// Reads CPU-interface register `offset`.
    pub fn cpu_read(offset: usize) -> u32 {
        // SAFETY: as for `distributor_read`, in the CPU interface's window.
        unsafe { read32(GICC + offset) }
    }

    /// Writes CPU-interface register `offset`.
    pub fn cpu_write(offset: usize, value: u32) {
        // SAFETY: as for `distributor_read`, in the CPU interface's window.
        unsafe { write32(GICC + offset, value) }
    }

    /// Acknowledges the highest-priority pending interrupt (GICC_IAR).
    pub fn acknowledge() -> u32 {
        // SAFETY: the virtual GIC's registers.
        unsafe { read32(GICC + 0xc) }
    }

    /// Ends interrupt `iar` (GICC_EOIR, the value IAR returned).
    pub fn end(iar: u32) {
        // SAFETY: the virtual GIC's registers.
        unsafe { write32(GICC + 0x10, iar) }
    }
}

/// Makes a hypercall: `function` in r0, `arguments` in r1-r7. Returns r0-r3.
pub fn hvc(function: u32, arguments: [u32; 7]) -> [u32; 4] {
    let (r0, r1, r2, r3): (u32, u32, u32, u32);
    // SAFETY: HVC traps to the hypervisor, which only changes r0-r3. r6
    // is reserved by LLVM, so r6 and r7 are loaded here and restored.
    unsafe {
        core::arch::asm!(
            ".arch_extension virt",
            "push {{r6, r7}}",
            "ldr r6, [r12]",
            "ldr r7, [r12, #4]",
            "hvc #0",
            "pop {{r6, r7}}",
            in("r12") arguments[5..].as_ptr(),
            inout("r0") function => r0,
            inout("r1") arguments[0] => r1,
            inout("r2") arguments[1] => r2,
            inout("r3") arguments[2] => r3,
            in("r4") arguments[3],
            in("r5") arguments[4],
        )
    };
    [r0, r1, r2, r3]
}

/// The same call through SMC (undefined on CPUs without the Security
/// Extensions, such as QEMU's Cortex-A15 on Integrator/CP).
pub fn smc(function: u32, arguments: [u32; 3]) -> [u32; 4] {
    let (r0, r1, r2, r3): (u32, u32, u32, u32);
    // SAFETY: as for hvc.
    unsafe {
        core::arch::asm!(
            ".arch_extension sec",
            "smc #0",
            inout("r0") function => r0,
            inout("r1") arguments[0] => r1,
            inout("r2") arguments[1] => r2,
            inout("r3") arguments[2] => r3,
            options(nostack)
        )
    };
    [r0, r1, r2, r3]
}

/// Makes this guest unable to take its own faults, then faults: VBAR :=
/// an IPA with nothing behind it, then a load from an unclaimed IPA. The
/// injected data abort goes to a vector that itself aborts, again and
/// again, until the hypervisor's fault policy restarts or stops the VM.
/// Returns only if the hypervisor let the fault pass (a failure).
pub fn fault_in_own_vectors() {
    // SAFETY: deliberately not safe: the guest exists to fault here; what
    // it breaks is its own exception handling.
    unsafe {
        core::arch::asm!(
            "mcr p15, 0, {vbar}, c12, c0, 0",
            "isb",
            "ldr {vbar}, [{address}]",
            vbar = inout(reg) 0x5000_0000u32 => _,
            address = in(reg) 0x2000_0000u32,
        )
    };
}

/// Reports `status` to the hypervisor and powers the VM off. Status 0 is a
/// pass.
pub fn exit(status: u32) -> ! {
    if !bare_qemu() {
        hvc(service::EXIT_STATUS, [status, 0, 0, 0, 0, 0, 0]);
    }
    // On bare QEMU `virt` too: its firmware emulation answers PSCI by HVC.
    hvc(psci::SYSTEM_OFF, [0; 7]);
    // SYSTEM_OFF does not return; if it did, say so and wait forever.
    println!("SYSTEM_OFF returned");
    loop {
        // SAFETY: waiting for an interrupt has no other effect.
        unsafe { core::arch::asm!("wfi", options(nomem, nostack)) };
    }
}

/// Whether this guest runs on bare QEMU `virt` (no hypervisor under it:
/// the bench guest's native runs) rather than in a Capvisor VM. QEMU
/// without EL2 reports no Virtualization Extensions in ID_PFR1 (bits
/// 15:12); a Capvisor VM sees the CPU's own ID_PFR1, which has them.
pub fn bare_qemu() -> bool {
    let id_pfr1: u32;
    // SAFETY: reading ID_PFR1 has no side effects.
    unsafe {
        core::arch::asm!("mrc p15, 0, {}, c0, c1, 1", out(reg) id_pfr1, options(nomem, nostack))
    };
    (id_pfr1 >> 12) & 0xf == 0
}

extern "C" fn exit_from_asm(status: u32) -> ! {
    exit(status)
}

/// Reads a 32-bit device or memory word.
///
/// # Safety
/// `address` must be a readable guest-physical address, or the caller must
/// expect the abort.
pub unsafe fn read32(address: usize) -> u32 {
    let value: u32;
    // SAFETY: forwarded to the caller. A plain LDR, never one with
    // writeback, which has no syndrome a hypervisor could emulate (Linux's
    // readl is written the same way for the same reason).
    unsafe {
        core::arch::asm!("ldr {v}, [{a}]", v = out(reg) value, a = in(reg) address, options(nostack, readonly))
    };
    value
}

/// Writes a 32-bit device or memory word.
///
/// # Safety
/// As for [`read32`].
pub unsafe fn write32(address: usize, value: u32) {
    // SAFETY: forwarded to the caller; a plain STR, as for `read32`.
    unsafe {
        core::arch::asm!("str {v}, [{a}]", v = in(reg) value, a = in(reg) address, options(nostack))
    };
}

/// The console: the virtual PL011.
#[derive(Debug)]
pub struct Console;

impl Write for Console {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        for byte in text.bytes() {
            // SAFETY: the virtual PL011 is every VM's device at 0x0900_0000.
            unsafe {
                while read32(UART_FR) & FR_TXFF != 0 {}
                write32(UART_DR, u32::from(byte));
            }
        }
        Ok(())
    }
}

/// Who holds the console: 0 nobody, else the holder's vCPU index + 1.
static CONSOLE_OWNER: AtomicU32 = AtomicU32::new(0);

/// Writes one `print!` (so one whole `println!` line) to the console while
/// holding its lock, so that lines from several vCPUs do not interleave.
///
/// The lock is a compare-and-swap on [`CONSOLE_OWNER`] (LDREX/STREX). The
/// guest runs with its MMU off, where the architecture makes its memory
/// Strongly-ordered, and whether exclusives work on such memory is up to
/// the implementation: QEMU's do (it ignores the memory type); on real
/// hardware a guest sharing memory between vCPUs would turn its MMU on
/// with Normal memory first. A vCPU that already holds the lock (an
/// exception handler printing, say "unexpected exception", while its own
/// program was printing) writes without it rather than waiting for itself,
/// exactly as the runtime did before it had a lock.
#[doc(hidden)]
pub fn print_fmt(arguments: fmt::Arguments<'_>) {
    let me = smp::index() as u32 + 1;
    let nested = CONSOLE_OWNER.load(Ordering::Relaxed) == me;
    if !nested {
        while CONSOLE_OWNER
            .compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
    }
    let _ = Console.write_fmt(arguments);
    if !nested {
        CONSOLE_OWNER.store(0, Ordering::Release);
    }
}

/// Prints to the virtual PL011.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => { $crate::print_fmt(format_args!($($arg)*)) };
}

/// Prints a line to the virtual PL011.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => { $crate::print_fmt(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Counts checks and failures, printing one line per check.
#[derive(Debug, Default)]
pub struct Checks {
    failures: u32,
    count: u32,
}

impl Checks {
    /// No checks yet.
    pub const fn new() -> Checks {
        Checks {
            failures: 0,
            count: 0,
        }
    }

    /// Checks `got == want`.
    pub fn equal(&mut self, name: &str, got: u32, want: u32) {
        self.count += 1;
        if got == want {
            println!("ok {}: {:#x}", name, got);
        } else {
            self.failures += 1;
            println!("FAIL {}: got {:#x}, want {:#x}", name, got, want);
        }
    }

    /// Checks that `condition` holds.
    pub fn that(&mut self, name: &str, condition: bool) {
        self.count += 1;
        if condition {
            println!("ok {}", name);
        } else {
            self.failures += 1;
            println!("FAIL {}", name);
        }
    }

    /// Checks made so far.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Checks failed so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// Adds checks made elsewhere (another vCPU's): `count` checks of
    /// which `failures` failed.
    pub fn add(&mut self, count: u32, failures: u32) {
        self.count += count;
        self.failures += failures;
    }

    /// Prints the summary and returns the exit status (failures).
    pub fn finish(&self, guest: &str) -> u32 {
        println!("{}: {} checks, {} failed", guest, self.count, self.failures);
        self.failures
    }
}

/// The guest's VM id and name, asked of the hypervisor.
pub fn vm_identity() -> (u32, [u8; 12], usize) {
    let id = hvc(service::VM_ID, [0; 7])[0];
    let [length, a, b, c] = hvc(service::VM_NAME, [0; 7]);
    let mut name = [0u8; 12];
    name[..4].copy_from_slice(&a.to_le_bytes());
    name[4..8].copy_from_slice(&b.to_le_bytes());
    name[8..].copy_from_slice(&c.to_le_bytes());
    (id, name, (length as usize).min(12))
}

/// Secondary vCPUs: PSCI CPU_ON, CPU_OFF and AFFINITY_INFO by HVC, and
/// the trampoline that gives a vCPU started by CPU_ON its own stacks.
///
/// A VM has up to [`MAX_VCPUS`] vCPUs; vCPU n's MPIDR is 0x8000_0000 | n.
/// vCPU 0 boots at `_start` as in a one-vCPU guest. It starts vCPU n with
/// [`start`], which stores the vCPU's `main` and calls CPU_ON with the
/// trampoline `__smp_entry` as the entry point and n as the context. The
/// trampoline (SVC mode, MMU off, r0 = n) masks interrupts, points VBAR at
/// the runtime's vectors, sets vCPU n's own stacks for abort, undefined,
/// IRQ, FIQ and SVC mode (guest.ld's `.smp_stacks`: a 64 KiB block for each
/// of vCPUs 1-3; vCPU 0 keeps the `.stacks` of a one-vCPU guest) and calls
/// `main(n)` in SVC mode with IRQs masked. `main` never returns: it ends in
/// [`cpu_off`] (or in [`exit`](crate::exit), which stops the whole VM). It
/// may start again later, by another CPU_ON, on fresh stacks.
///
/// The vCPUs share the guest's memory with the MMU off; see
/// [`print_fmt`](crate::print_fmt) for what that means for atomics.
pub mod virtio;

pub mod smp {
    use super::{hvc, psci};
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// The most vCPUs a VM has (and the runtime has stacks for).
    pub const MAX_VCPUS: usize = 4;

    /// log2 of each secondary vCPU's stack block in `.smp_stacks` (64 KiB;
    /// guest.ld reserves `(MAX_VCPUS - 1)` blocks).
    const STACK_BLOCK_SHIFT: u32 = 16;
    /// The stacks' tops, as offsets into the block: SVC 32 KiB, then abort,
    /// undefined, IRQ and FIQ 8 KiB each.
    const SVC_TOP: u32 = 0x8000;
    const ABT_TOP: u32 = 0xa000;
    const UND_TOP: u32 = 0xc000;
    const IRQ_TOP: u32 = 0xe000;
    const FIQ_TOP: u32 = 0x1_0000;

    /// Each vCPU's `main`, as an address (0: none), stored by [`start`]
    /// before its CPU_ON and read by the started vCPU.
    static MAINS: [AtomicUsize; MAX_VCPUS] = [const { AtomicUsize::new(0) }; MAX_VCPUS];

    core::arch::global_asm!(
        r#"
        .arm
        .arch_extension virt
        .section .text.__smp_entry, "ax"
        .global __smp_entry
        .balign 4
    __smp_entry:
        @ CPU_ON lands here: SVC mode, MMU off, r0 = the context start
        @ gave, the vCPU's number.
        cpsid   aif                     @ IRQs, FIQs, aborts masked until main says
        cmp     r0, #1                  @ r0 = the vCPU: only 1 to MAX_VCPUS - 1
        blo     2f                      @ have stacks; any other parks below
        cmp     r0, #{max}
        bhs     2f
        ldr     r1, =__smp_stacks_start @ r1 := this vCPU's stack block:
        sub     r2, r0, #1              @ r2 := vCPU - 1
        add     r1, r1, r2, lsl #{shift} @ r1 := start + (vCPU - 1) * block
        ldr     r2, =__vectors          @ r2 := the runtime's vector table
        mcr     p15, 0, r2, c12, c0, 0  @ VBAR := r2, as on vCPU 0
        cps     #0x17                   @ abort mode: sp := its top in the block
        add     sp, r1, #{abt}
        cps     #0x1b                   @ undefined mode
        add     sp, r1, #{und}
        cps     #0x12                   @ IRQ mode
        add     sp, r1, #{irq}
        cps     #0x11                   @ FIQ mode
        add     sp, r1, #{fiq}
        cps     #0x13                   @ back to SVC, where main runs
        add     sp, r1, #{svc}
        isb
        bl      {entry}                 @ r0 = the vCPU; does not return
    2:  ldr     r0, ={cpu_off}          @ no stacks for this vCPU: r0 := CPU_OFF
        hvc     #0                      @ (does not return)
        b       2b
        .ltorg
    "#,
        max = const MAX_VCPUS,
        shift = const STACK_BLOCK_SHIFT,
        abt = const ABT_TOP,
        und = const UND_TOP,
        irq = const IRQ_TOP,
        fiq = const FIQ_TOP,
        svc = const SVC_TOP,
        cpu_off = const psci::CPU_OFF,
        entry = sym secondary_entry,
    );

    extern "C" {
        /// The trampoline above (not to be called: its address is CPU_ON's
        /// entry point).
        fn __smp_entry();
    }

    /// The started vCPU's first Rust code (from the trampoline, on its own
    /// SVC stack): runs the `main` [`start`] stored for it.
    extern "C" fn secondary_entry(vcpu: u32) -> ! {
        let main = MAINS[vcpu as usize % MAX_VCPUS].load(Ordering::Acquire);
        if main == 0 {
            crate::println!("smp: vcpu {} started with no main", vcpu);
            cpu_off();
        }
        // SAFETY: `start` is the only writer of MAINS, and what it stores
        // is a `fn(u32) -> !` as an address.
        let main = unsafe { core::mem::transmute::<usize, fn(u32) -> !>(main) };
        main(vcpu)
    }

    /// This vCPU's MPIDR (0x8000_0000 | its number in a Capvisor VM).
    pub fn mpidr() -> u32 {
        let mpidr: u32;
        // SAFETY: reading MPIDR has no side effects.
        unsafe {
            core::arch::asm!("mrc p15, 0, {}, c0, c0, 5", out(reg) mpidr, options(nomem, nostack))
        };
        mpidr
    }

    /// This vCPU's number: MPIDR.Aff0.
    pub fn current() -> u32 {
        mpidr() & 0xff
    }

    /// This vCPU's slot in the runtime's per-vCPU state (its number, below
    /// [`MAX_VCPUS`] in a Capvisor VM; reduced to that range anywhere else,
    /// so a one-vCPU guest always has a slot).
    pub(crate) fn index() -> usize {
        current() as usize % MAX_VCPUS
    }

    /// The trampoline's address, CPU_ON's entry point for [`start`].
    pub fn entry_address() -> u32 {
        __smp_entry as *const () as usize as u32
    }

    /// Starts vCPU `vcpu` running `main(vcpu)` on its own stacks: stores
    /// `main` for it, then calls PSCI CPU_ON (target MPIDR affinity `vcpu`,
    /// entry the trampoline, context `vcpu`). Returns PSCI's answer
    /// ([`psci::SUCCESS`], [`psci::ALREADY_ON`], [`psci::ON_PENDING`],
    /// [`psci::INVALID_PARAMETERS`] for a vCPU the VM does not have, ...).
    /// A `vcpu` of 0 or from [`MAX_VCPUS`] on is still asked of PSCI (to
    /// test its answers); should it start anyway, the trampoline turns it
    /// off again at once.
    pub fn start(vcpu: u32, main: fn(u32) -> !) -> i32 {
        if vcpu != 0 {
            if let Some(slot) = MAINS.get(vcpu as usize) {
                slot.store(main as usize, Ordering::Release);
            }
        }
        cpu_on(vcpu, entry_address(), vcpu)
    }

    /// PSCI CPU_ON by HVC with the raw arguments: target MPIDR affinity,
    /// entry point, context. Returns PSCI's answer.
    pub fn cpu_on(target: u32, entry: u32, context: u32) -> i32 {
        hvc(psci::CPU_ON, [target, entry, context, 0, 0, 0, 0])[0] as i32
    }

    /// Turns the calling vCPU off (PSCI CPU_OFF); the VM stops when its
    /// last vCPU is off.
    pub fn cpu_off() -> ! {
        let answer = hvc(psci::CPU_OFF, [0; 7])[0] as i32;
        // CPU_OFF does not return; if it did, say so and wait forever.
        crate::println!("smp: CPU_OFF returned {} on vcpu {}", answer, current());
        loop {
            crate::wait_for_interrupt();
        }
    }

    /// PSCI AFFINITY_INFO by HVC for vCPU `vcpu` (target MPIDR affinity,
    /// level 0): [`psci::AFFINITY_ON`], [`psci::AFFINITY_OFF`],
    /// [`psci::AFFINITY_ON_PENDING`], or [`psci::INVALID_PARAMETERS`] for
    /// a vCPU the VM does not have.
    pub fn affinity_info(vcpu: u32) -> i32 {
        hvc(psci::AFFINITY_INFO, [vcpu, 0, 0, 0, 0, 0, 0])[0] as i32
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    println!("guest panic: {}", info);
    exit(0xdead)
}
