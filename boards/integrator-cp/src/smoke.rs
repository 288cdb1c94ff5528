//! A built-in test guest that exercises the world switch end to end.
//!
//! Compiled only with the `test-world-switch` feature. The guest's code (in
//! the image's `.guest_smoke` section) is given to a VM at IPA 0x4000_0000
//! through stage 2 and nothing else is mapped. The guest fills r4-r12 and
//! SP_svc with known values, asks for the PSCI version by HVC, loads from the
//! unmapped IPA 0x0900_0018 (which the hypervisor emulates with 0x5a),
//! checks that its registers survived both exits, reports what it saw with a
//! test hypercall, then loads from an IPA nobody claims and reports what its
//! own data abort handler saw (rule 2), and powers off with PSCI SYSTEM_OFF. The run loop hands
//! each exit to `hyp::dispatch` with the PSCI capsule, a report service and a
//! stand-in device, and prints one line per exit, so the integration test
//! can check the values end to end.

use crate::builtin_guest::start_builtin_guest;
use crate::log;
use armv7a::cp15_context::Cp15Context;
use armv7a::vcpu::ACTLR_AT_RESET;
use armv7a::world_switch::{reflect_fault, run_guest};
use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use capsules::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::dispatch::{dispatch, Action, HypercallDriver, HypercallOutcome, MmioDevice};
use hyp::exit::ExitCode;
use hyp::kernel::Vcpu;
use hyp::trap::Trap;
/// The smoke guest's report call (vendor-specific hypervisor service range).
const SMOKE_REPORT: u32 = 0x8600_0f00;
/// The virtual UART's FR when idle: TXFE | RXFE.
const UART_FR_IDLE: u32 = 0x90;

core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm
    .section .guest_smoke, "ax"
    @ Runs at IPA 0x4000_0000, SVC mode, MMU off.
guest_smoke_entry:
    ldr     sp, =0x40000ff0         @ SP_svc := a known value
    ldr     r4, =0x44444444         @ r4-r12 := known values
    ldr     r5, =0x55555555
    ldr     r6, =0x66666666
    ldr     r7, =0x77777777
    ldr     r8, =0x88888888
    ldr     r9, =0x99999999
    ldr     r10, =0xaaaaaaaa
    ldr     r11, =0xbbbbbbbb
    ldr     r12, =0xcccccccc
    ldr     r0, =0x84000000         @ r0 := PSCI_VERSION
    hvc     #0
    mov     r3, r0                  @ r3 := the version returned
    ldr     r0, =0x09000000         @ the virtual PL011 (not mapped: emulated)
    adr     r1, guest_greeting
2:  ldrb    r2, [r1], #1            @ print the greeting byte by byte to DR
    cmp     r2, #0
    strbne  r2, [r0]
    bne     2b
    ldr     r2, [r0, #0x18]         @ r2 := FR (TXFE | RXFE = 0x90)
    mov     r0, #1                  @ r0 := 1 while every register checks out
    ldr     r1, =0x44444444
    cmp     r4, r1
    movne   r0, #0
    ldr     r1, =0x55555555
    cmp     r5, r1
    movne   r0, #0
    ldr     r1, =0x66666666
    cmp     r6, r1
    movne   r0, #0
    ldr     r1, =0x77777777
    cmp     r7, r1
    movne   r0, #0
    ldr     r1, =0x88888888
    cmp     r8, r1
    movne   r0, #0
    ldr     r1, =0x99999999
    cmp     r9, r1
    movne   r0, #0
    ldr     r1, =0xaaaaaaaa
    cmp     r10, r1
    movne   r0, #0
    ldr     r1, =0xbbbbbbbb
    cmp     r11, r1
    movne   r0, #0
    ldr     r1, =0xcccccccc
    cmp     r12, r1
    movne   r0, #0
    ldr     r1, =0x40000ff0
    cmp     sp, r1
    movne   r0, #0
    mov     r1, r0                  @ r1 := registers preserved (1/0)
    ldr     r0, =0x86000f00         @ report: r1 preserved, r2 MMIO, r3 version
    hvc     #0
    @ Rule 2: a load from an IPA nobody claims must come back as a data
    @ abort at the guest's own vector. VBAR := guest_vectors.
    adr     r0, guest_vectors
    mcr     p15, 0, r0, c12, c0, 0
    isb
    mov     r5, #0                  @ r5-r8 are filled in by the handler
    mov     r6, #0
    mov     r7, #0
    mov     r8, #0
    ldr     r0, =0x0a000000         @ nothing is mapped or emulated here
guest_faulting_load:
    ldr     r1, [r0]                @ aborts; the handler resumes after it
    mov     r1, r5                  @ report: DFSR, DFAR, LR_abt, SPSR_abt
    mov     r2, r6
    mov     r3, r7
    mov     r4, r8
    ldr     r0, =0x86000f01
    hvc     #0
    @ ACTLR is trapped (HCR.TAC) and emulated: r8 := what the guest sees.
    mrc     p15, 0, r8, c1, c0, 1
    mov     r9, #0
    mov     r10, #0
    @ A c15 access is trapped (HSTR.T15) and not emulated: it must come
    @ back as an undefined-instruction exception at the guest's vector.
    mrc     p15, 0, r0, c15, c0, 0
    mov     r1, r8                  @ report: ACTLR, LR_und, SPSR_und
    mov     r2, r9
    mov     r3, r10
    ldr     r0, =0x86000f02
    hvc     #0
    ldr     r0, =0x86000003         @ CONSOLE_WRITE of 12 bytes in r2-r4
    mov     r1, #12
    ldr     r2, =0x20637668         @ "hvc "
    ldr     r3, =0x73796173         @ "says"
    ldr     r4, =0x0a696820         @ " hi\n"
    hvc     #0
    ldr     r0, =0x84000008         @ PSCI SYSTEM_OFF
    hvc     #0
1:  b       1b

    @ The guest's own vector table: only the data abort entry is used.
    .balign 32
guest_vectors:
    b       .                       @ 0x00 reset
    b       guest_undefined         @ 0x04 undefined
    b       .                       @ 0x08 SVC
    b       .                       @ 0x0c prefetch abort
    b       guest_data_abort        @ 0x10 data abort
    b       .                       @ 0x14 not used
    b       .                       @ 0x18 IRQ
    b       .                       @ 0x1c FIQ
guest_undefined:
    mov     r9, lr                  @ r9 := LR_und (the instruction + 4)
    mrs     r10, spsr               @ r10 := SPSR_und
    movs    pc, lr                  @ resume after it
guest_data_abort:
    mrc     p15, 0, r5, c5, c0, 0   @ r5 := DFSR
    mrc     p15, 0, r6, c6, c0, 0   @ r6 := DFAR
    mov     r7, lr                  @ r7 := LR_abt (faulting instruction + 8)
    mrs     r8, spsr                @ r8 := SPSR_abt (the interrupted CPSR)
    subs    pc, lr, #4              @ resume after the faulting load
guest_greeting:
    .asciz  "hello from the smoke guest\n"
    .balign 4
    .ltorg
"#
);

/// The smoke guest's abort report call.
const SMOKE_ABORT_REPORT: u32 = 0x8600_0f01;
/// The smoke guest's report of ACTLR and of its undefined-instruction handler.
const SMOKE_UNDEFINED_REPORT: u32 = 0x8600_0f02;

/// The smoke guest's report service: remembers the arguments of each
/// report call.
struct SmokeReport {
    report: Cell<Option<[u32; 3]>>,
    abort: Cell<Option<[u32; 4]>>,
    undefined: Cell<Option<[u32; 3]>>,
}

impl HypercallDriver for SmokeReport {
    fn owns(&self, function: u32) -> bool {
        matches!(
            function,
            SMOKE_REPORT | SMOKE_ABORT_REPORT | SMOKE_UNDEFINED_REPORT
        )
    }

    fn call(&self, function: u32, arguments: [u32; 7]) -> HypercallOutcome {
        let [a, b, c, d, ..] = arguments;
        match function {
            SMOKE_REPORT => self.report.set(Some([a, b, c])),
            SMOKE_ABORT_REPORT => self.abort.set(Some([a, b, c, d])),
            _ => self.undefined.set(Some([a, b, c])),
        }
        HypercallOutcome::value(0)
    }
}

/// Saves the guest's CP15 state, overwrites it with zeros as another VM
/// would, restores it, and checks that every register came back: the guest
/// then resumes on the restored state, so a register the context misses
/// (VBAR for its abort handler) makes the run fail.
fn cp15_survives_a_switch() -> bool {
    let saved = Cp15Context::save();
    // SAFETY: the zeros are never run with (the saved state is restored
    // right after), and the saved state is this guest's own.
    unsafe {
        Cp15Context::default().restore();
        saved.restore();
    }
    let back = Cp15Context::save();
    if back != saved {
        log!(
            "smoke guest: CP15 mismatch: saved {:x?}, restored {:x?}",
            saved,
            back
        );
    }
    back == saved
}

/// Runs the smoke guest to SYSTEM_OFF and stops QEMU with its verdict.
pub fn run() -> ! {
    let mut vcpu = start_builtin_guest("smoke guest");
    // The tables map only the smoke guest's own code page(s); HCR keeps
    // interrupts and aborts in Hyp.
    vcpu.switch_in();
    let psci = Psci::new();
    let report = SmokeReport {
        report: Cell::new(None),
        abort: Cell::new(None),
        undefined: Cell::new(None),
    };
    let console = crate::io::console();
    let uart = VirtualUart::new(&console);
    let service = HypervisorService::new(1, "smoke", &console);
    let services: [&dyn HypercallDriver; 3] = [&psci, &service, &report];
    let devices: [&dyn MmioDevice; 1] = [&uart];
    let mut stopped = false;
    let mut cp15_ok = true;
    let mut c15_pc = None;
    for _ in 0..256 {
        // SAFETY: stage 2 and HCR were installed for this guest just above.
        let exit = unsafe { run_guest(&mut vcpu.context) };
        cp15_ok &= cp15_survives_a_switch();
        let pc = vcpu.context.pc;
        let function = vcpu.context.r[0];
        let action = dispatch(&exit, &mut vcpu, &devices, &services);
        let context = &mut vcpu.context;
        match exit.trap {
            Trap::Hypercall { immediate } => log!(
                "smoke guest: HVC #{} function {:#010x} -> r0 {:#010x}, {:?}",
                immediate,
                function,
                context.r[0],
                action
            ),
            Trap::MmioRead {
                ipa,
                size,
                sign_extend,
                register,
                ..
            } => log!(
                "smoke guest: MMIO read {:#010x} ({:?}, sign-extend {}) into r{} at pc {:#010x}: {:?}",
                ipa,
                size,
                sign_extend,
                register,
                pc,
                action
            ),
            Trap::DataAbort { va, ipa, kind, .. } => log!(
                "smoke guest: data abort at va {:#010x} (ipa {:?}, {:?}) at pc {:#010x}: {:?}",
                va,
                ipa,
                kind,
                pc,
                action
            ),
            Trap::SystemRegister { access, .. } => {
                if access.crn == 15 {
                    c15_pc = Some(pc);
                }
                log!(
                    "smoke guest: {} p15 c{}, c{}, {} at pc {:#010x}: {:?}",
                    if access.read { "MRC" } else { "MCR" },
                    access.crn,
                    access.crm,
                    access.opc2,
                    pc,
                    action
                )
            }
            // Bytes for the virtual UART: the guest's text is the evidence.
            Trap::MmioWrite { .. } if action == Action::Resume => {}
            other => log!("smoke guest: unexpected exit {:?} at pc {:#010x}", other, pc),
        }
        match action {
            Action::Resume => {}
            Action::InjectUndefined => {
                // SAFETY: this guest just exited and its CP15 state is live.
                unsafe { reflect_fault(context, &action) };
            }
            Action::InjectDataAbort { .. } => {
                // SAFETY: this guest just exited and its CP15 state is live.
                unsafe { reflect_fault(context, &action) };
                log!(
                    "smoke guest: reflected: LR_abt {:#010x}, SPSR_abt {:#010x}, vector {:#010x}",
                    context.abt.lr,
                    context.abt.spsr,
                    context.pc
                );
            }
            Action::StopVm => {
                log!("smoke guest: stopped by PSCI at pc {:#010x}", context.pc);
                stopped = true;
                break;
            }
            other => {
                log!("smoke guest: unexpected action {:?}", other);
                break;
            }
        }
    }
    let passed = match report.report.get() {
        Some([preserved, mmio, version]) => {
            log!(
                "smoke guest: report: registers preserved {}, MMIO value {:#x}, PSCI version {:#x}, SP_svc {:#010x}",
                preserved,
                mmio,
                version,
                vcpu.context.svc.sp
            );
            stopped && preserved == 1 && mmio == UART_FR_IDLE && version == 2
        }
        None => false,
    };
    let abort_ok = match report.abort.get() {
        Some([dfsr, dfar, lr_abt, spsr_abt]) => {
            log!(
                "smoke guest: abort handler saw DFSR {:#05x}, DFAR {:#010x}, LR_abt {:#010x}, SPSR_abt {:#010x}",
                dfsr,
                dfar,
                lr_abt,
                spsr_abt
            );
            dfsr == 0x008 && dfar == 0x0a00_0000 && spsr_abt & 0x1f == 0x13
        }
        None => false,
    };
    log!(
        "smoke guest: CP15 context saved, clobbered and restored at every exit: {}",
        if cp15_ok { "identical" } else { "MISMATCH" }
    );
    let undefined_ok = match (report.undefined.get(), c15_pc) {
        (Some([actlr, lr_und, spsr_und]), Some(pc)) => {
            log!(
                "smoke guest: ACTLR read {:#x}; undefined handler saw LR_und {:#010x}, SPSR_und {:#010x}",
                actlr,
                lr_und,
                spsr_und
            );
            actlr == ACTLR_AT_RESET && lr_und == pc + 4 && spsr_und & 0x1f == 0x13
        }
        _ => false,
    };
    let passed = passed && abort_ok && cp15_ok && undefined_ok;
    log!("smoke guest: {}", if passed { "passed" } else { "FAILED" });
    crate::io::stop(if passed {
        ExitCode::Success
    } else {
        ExitCode::VmFailed
    })
}
