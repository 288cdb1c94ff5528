//! Two built-in guests taking turns, each unable to see the other's memory.
//!
//! Compiled only with the `test-two-vms` feature. Both VMs run the same
//! code (the image's `.guest_smoke` section, mapped read-execute at IPA
//! 0x4000_0000) and each has one private page of RAM at IPA 0x4000_1000,
//! backed by a different page of the host's guest pool and zeroed before the
//! VM starts. Each guest asks its VM id, then five times: writes its id and
//! the round number into its page, waits (WFI, which the hypervisor treats
//! as a yield to the other VM), and checks both words are still its own.
//! It reports by hypercall and powers off. The VMs run under the core's exit
//! loop (`hyp::kernel::Kernel`) with `ArmVcpu`s: between them it switches
//! stage 2 (VTTBR with the VM's VMID), the core registers, the CP15
//! context and the VFP/NEON registers (each guest keeps its own id in d0 and
//! d31 and checks them after every turn). A third VM, 'broken', points its
//! vectors at nothing and faults: its fault policy stops it after its
//! vectors fault three times in a row, while the other two carry on.

use crate::log;
use armv7a::cp15_context::Cp15Context;
use armv7a::stage2::{vttbr, GuestAccess, GuestMapping, Stage2Tables};
use armv7a::vcpu::ArmVcpu;
use armv7a::world_switch::GuestContext;
use capsules::fault_policies::StopFaultPolicy;
use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use core::cell::Cell;
use hyp::config::GUEST_RAM_IPA;
use hyp::dispatch::{HypercallDriver, HypercallOutcome};
use hyp::exit::ExitCode;
use hyp::kernel::{Kernel, RunOutcome, Vm, VmState};
use hyp::memory::MemoryType;
use hyp::utilities::TakeOnce;

/// The guests' report call: r1 ok, r2 rounds, r3 the id they saw.
const REPORT: u32 = 0x8600_0f20;
/// Guest-physical address of each VM's private page.
const PRIVATE_IPA: u32 = GUEST_RAM_IPA + 0x1000;
/// Host pages backing the private pages (in the guest pool, 2 MiB apart).
const PRIVATE_HOST: [u64; 3] = [0x8000_0000, 0x8020_0000, 0x8040_0000];
/// Where the broken guest starts (see the assembly).
const BROKEN_ENTRY: u32 = GUEST_RAM_IPA + 0x800;

static STAGE2: [TakeOnce<Stage2Tables<1, 1>>; 3] = [
    TakeOnce::new(Stage2Tables::new()),
    TakeOnce::new(Stage2Tables::new()),
    TakeOnce::new(Stage2Tables::new()),
];

core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm
    .fpu neon
    .section .guest_smoke, "ax"
    @ Runs at IPA 0x4000_0000 in each VM, SVC mode, MMU off.
two_vms_entry:
    mrc     p15, 0, r0, c1, c0, 2   @ CPACR: full access to cp10 and cp11
    orr     r0, r0, #0x00f00000
    mcr     p15, 0, r0, c1, c0, 2
    isb
    mov     r0, #0x40000000         @ FPEXC.EN: VFP on
    vmsr    fpexc, r0
    mrc     p15, 0, r0, c9, c12, 0  @ PMCR.E: the cycle counter runs
    orr     r0, r0, #1
    mcr     p15, 0, r0, c9, c12, 0
    mov     r0, #0x80000000         @ PMCNTENSET.C
    mcr     p15, 0, r0, c9, c12, 1
    ldr     r0, =0x86000001         @ VM_ID
    hvc     #0
    mov     r4, r0                  @ r4 := this VM's id
    mvn     r3, r4
    vmov    d0, r4, r4              @ d0 := (id, id), d31 := (id, ~id)
    vmov    d31, r4, r3
    ldr     r5, =0x40001000         @ r5 := the private page
    mov     r6, #0                  @ r6 := round
    mov     r7, #1                  @ r7 := 1 while everything checks out
1:  str     r4, [r5]                @ claim the page: id, round
    str     r6, [r5, #4]
    mrc     p15, 0, r0, c9, c13, 0  @ PMCCNTR just before the WFI -> +8
    str     r0, [r5, #8]
    wfi                             @ the other VM runs now
    mrc     p15, 0, r0, c9, c13, 0  @ PMCCNTR just after the turn -> +12
    str     r0, [r5, #12]
    ldr     r1, [r5]
    cmp     r1, r4
    movne   r7, #0
    ldr     r1, [r5, #4]
    cmp     r1, r6
    movne   r7, #0
    vmov    r1, r2, d0              @ the FP registers must be ours too
    cmp     r1, r4
    movne   r7, #0
    cmp     r2, r4
    movne   r7, #0
    vmov    r1, r2, d31
    cmp     r1, r4
    movne   r7, #0
    mvn     r3, r4
    cmp     r2, r3
    movne   r7, #0
    add     r6, r6, #1
    cmp     r6, #5
    blo     1b
    mov     r1, r7                  @ report: ok, rounds, id
    mov     r2, r6
    mov     r3, r4
    ldr     r0, =0x86000f20
    hvc     #0
    ldr     r0, =0x84000008         @ PSCI SYSTEM_OFF
    hvc     #0
2:  b       2b
    .ltorg

    @ A third, broken guest (at IPA 0x4000_0800): its vector table points
    @ at an IPA with nothing behind it, then it loads from an unclaimed IPA.
    @ The abort is reflected to a vector that itself faults, again and
    @ again: its fault policy must stop it while the others run on.
    .balign 0x800
broken_entry:
    ldr     r0, =0x50000000         @ VBAR := unmapped
    mcr     p15, 0, r0, c12, c0, 0
    isb
    ldr     r0, =0x0a000000         @ nobody claims this IPA
    ldr     r1, [r0]
3:  b       3b
    .ltorg
"#
);

/// Keeps each VM's report.
struct Report {
    values: Cell<Option<[u32; 3]>>,
}

impl HypercallDriver for Report {
    fn owns(&self, function: u32) -> bool {
        function == REPORT
    }

    fn call(&self, _function: u32, arguments: [u32; 7]) -> HypercallOutcome {
        let [ok, rounds, id, ..] = arguments;
        self.values.set(Some([ok, rounds, id]));
        HypercallOutcome::value(0)
    }
}

/// Maps the shared code and the VM's private page, zeroing the page.
fn build_vcpu(index: usize, name: &'static str, entry: u32, cp15_at_reset: Cp15Context) -> ArmVcpu {
    let id = index as u8 + 1;
    let code = crate::memory_map::guest_smoke();
    let tables = STAGE2[index].take().expect("each VM is built once");
    let mappings = [
        GuestMapping {
            name: "code",
            ipa: GUEST_RAM_IPA,
            physical: code.start as u64,
            size: code.size,
            memory: MemoryType::Normal,
            access: GuestAccess::ReadExecute,
        },
        GuestMapping {
            name: "private",
            ipa: PRIVATE_IPA,
            physical: PRIVATE_HOST[index],
            size: 0x1000,
            memory: MemoryType::Normal,
            access: GuestAccess::ReadWrite,
        },
    ];
    for mapping in &mappings {
        if let Err(error) = tables.map(mapping) {
            crate::io::refuse_boot(format_args!("VM '{}': {}", name, error));
        }
    }
    // The guest pool is mapped for the hypervisor (rw-, execute-never).
    let page = PRIVATE_HOST[index] as usize as *mut u32;
    for word in 0..1024 {
        // SAFETY: the page lies in the guest pool, which the Hyp map covers,
        // and no VM runs yet.
        unsafe { page.add(word).write_volatile(0) };
    }
    log!(
        "two VMs: '{}' (VMID {}): code at IPA {:#010x}, private page IPA {:#010x} -> host {:#010x}",
        name,
        id,
        GUEST_RAM_IPA,
        PRIVATE_IPA,
        PRIVATE_HOST[index]
    );
    ArmVcpu::new(
        GuestContext::boot(entry),
        cp15_at_reset,
        vttbr(id, tables.root_table_address()),
    )
}

/// Runs both VMs with the core's exit loop until both stop, then reports.
pub fn run() -> ! {
    crate::count_hyp_cycles();
    let cp15_at_reset = Cp15Context::save();
    let console = crate::io::console();
    let psci = Psci::new();
    let reports = [
        Report {
            values: Cell::new(None),
        },
        Report {
            values: Cell::new(None),
        },
    ];
    let alpha_service = HypervisorService::new(1, "alpha", &console);
    let beta_service = HypervisorService::new(2, "beta", &console);
    let alpha_services: [&dyn HypercallDriver; 3] = [&psci, &alpha_service, &reports[0]];
    let beta_services: [&dyn HypercallDriver; 3] = [&psci, &beta_service, &reports[1]];
    let broken_services: [&dyn HypercallDriver; 1] = [&psci];
    let policy = StopFaultPolicy;
    let mut vms = [
        Vm::new(
            "alpha",
            build_vcpu(0, "alpha", GUEST_RAM_IPA, cp15_at_reset),
            &[],
            &alpha_services,
            &policy,
        ),
        Vm::new(
            "beta",
            build_vcpu(1, "beta", GUEST_RAM_IPA, cp15_at_reset),
            &[],
            &beta_services,
            &policy,
        ),
        Vm::new(
            "broken",
            build_vcpu(2, "broken", BROKEN_ENTRY, cp15_at_reset),
            &[],
            &broken_services,
            &policy,
        ),
    ];
    let outcome = Kernel.run(&mut vms, 1000);
    for vm in &vms {
        log!(
            "two VMs: '{}' {:?} after {} exits ({} waits, {} hypercalls, {} faults reflected)",
            vm.name,
            vm.state,
            vm.counters.exits,
            vm.counters.waits,
            vm.counters.hypercalls,
            vm.counters.injected_faults
        );
    }
    let switches: u32 = vms.iter().map(|vm| vm.counters.waits).sum();
    // The last turn went from beta's WFI to alpha's next instruction: with
    // QEMU's -icount, an exact count of what one VM switch costs.
    // SAFETY: the guest pool is mapped for the hypervisor; the VMs stopped.
    let (alpha_after, beta_before) = unsafe {
        (
            ((PRIVATE_HOST[0] + 12) as usize as *const u32).read_volatile(),
            ((PRIVATE_HOST[1] + 8) as usize as *const u32).read_volatile(),
        )
    };
    log!(
        "two VMs: VM switch (WFI in one VM to the next instruction of the other): {} cycles",
        alpha_after.wrapping_sub(beta_before)
    );
    let mut passed = true;
    for (index, vm) in vms[..2].iter().enumerate() {
        let id = index as u32 + 1;
        // SAFETY: the guest pool is mapped for the hypervisor; the VMs have
        // stopped.
        let page = unsafe { (PRIVATE_HOST[index] as usize as *const [u32; 2]).read_volatile() };
        let report = reports[index].values.get();
        log!(
            "two VMs: '{}' report {:?}; its host page holds id {} round {}",
            vm.name,
            report,
            page[0],
            page[1]
        );
        let ok = report == Some([1, 5, id]) && page == [id, 4] && vm.state == VmState::Stopped;
        passed &= ok;
    }
    let passed = passed && outcome == RunOutcome::AllStopped && vms[2].state == VmState::Faulted;
    log!(
        "two VMs: {:?} after {} yields; {}",
        outcome,
        switches,
        if passed { "passed" } else { "FAILED" }
    );
    crate::io::stop(if passed {
        ExitCode::Success
    } else {
        ExitCode::VmFailed
    })
}
