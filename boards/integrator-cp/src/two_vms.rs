//! Two built-in guests taking turns, each unable to see the other's memory.
//!
//! Compiled only with the `test-two-vms` feature. Both VMs run the same
//! code (the image's `.guest_smoke` section, mapped read-execute at IPA
//! 0x4000_0000) and each has one private page of RAM at IPA 0x4000_1000,
//! backed by a different page of the host's guest pool and zeroed before the
//! VM starts. Each guest asks its VM id, then five times: writes its id and
//! the round number into its page, waits (WFI, which the hypervisor treats
//! as a yield to the other VM), and checks both words are still its own.
//! It reports by hypercall and powers off. Between the VMs the hypervisor
//! switches stage 2 (VTTBR with the VM's VMID), the core registers, the CP15
//! context and the VFP/NEON registers (each guest keeps its own id in d0 and
//! d31 and checks them after every turn).

use crate::log;
use armv7a::cp15_context::Cp15Context;
use armv7a::fp_context::{enable_hyp_fp_access, FpContext};
use armv7a::stage2::{vttbr, GuestAccess, GuestMapping, Stage2Tables};
use armv7a::world_switch::{install_guest_translation, run_guest, GuestContext};
use capsules::hypervisor_service::HypervisorService;
use capsules::psci::Psci;
use core::cell::Cell;
use hyp::config::GUEST_RAM_IPA;
use hyp::dispatch::{dispatch, Action, HypercallDriver, HypercallOutcome, MmioDevice};
use hyp::exit::ExitCode;
use hyp::memory::MemoryType;
use hyp::utilities::TakeOnce;

/// The guests' report call: r1 ok, r2 rounds, r3 the id they saw.
const REPORT: u32 = 0x8600_0f20;
/// Guest-physical address of each VM's private page.
const PRIVATE_IPA: u32 = GUEST_RAM_IPA + 0x1000;
/// Host pages backing the private pages (in the guest pool, 2 MiB apart).
const PRIVATE_HOST: [u64; 2] = [0x8000_0000, 0x8020_0000];

static STAGE2: [TakeOnce<Stage2Tables<1, 1>>; 2] = [
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

/// One built-in VM.
struct BuiltinVm {
    id: u8,
    name: &'static str,
    context: GuestContext,
    cp15: Cp15Context,
    fp: FpContext,
    vttbr: u64,
    running: bool,
    exits: u32,
}

/// Maps the shared code and the VM's private page, zeroing the page.
fn build_vm(index: usize, name: &'static str, cp15_at_reset: Cp15Context) -> BuiltinVm {
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
    BuiltinVm {
        id,
        name,
        context: GuestContext::boot(GUEST_RAM_IPA),
        cp15: cp15_at_reset,
        fp: FpContext::default(),
        vttbr: vttbr(id, tables.root_table_address()),
        running: true,
        exits: 0,
    }
}

/// Runs both VMs round robin until both stop, then reports.
pub fn run() -> ! {
    enable_hyp_fp_access();
    crate::count_hyp_cycles();
    let cp15_at_reset = Cp15Context::save();
    let mut vms = [
        build_vm(0, "alpha", cp15_at_reset),
        build_vm(1, "beta", cp15_at_reset),
    ];
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
    let services = [
        HypervisorService::new(1, "alpha", &console),
        HypervisorService::new(2, "beta", &console),
    ];
    let devices: [&dyn MmioDevice; 0] = [];
    let mut current = 0;
    let mut loaded: Option<usize> = None;
    let mut switches = 0u32;
    for _ in 0..1000 {
        if !vms.iter().any(|vm| vm.running) {
            break;
        }
        if loaded != Some(current) {
            // A VM switch: park the previous VM's CP15 and FP state, load
            // this VM's, and point stage 2 at its tables and VMID.
            if let Some(previous) = loaded {
                vms[previous].cp15 = Cp15Context::save();
                vms[previous].fp = FpContext::save();
            }
            let vm = &vms[current];
            // SAFETY: the VM's own state goes in before it runs.
            unsafe {
                vm.cp15.restore();
                vm.fp.restore();
                install_guest_translation(vm.vttbr);
            }
            loaded = Some(current);
        }
        let vm = &mut vms[current];
        // SAFETY: stage 2, HCR, CP15 and FP state are this VM's (above).
        let exit = unsafe { run_guest(&mut vm.context) };
        vm.exits += 1;
        let vm_services: [&dyn HypercallDriver; 3] = [&psci, &services[current], &reports[current]];
        let action = dispatch(&exit, &mut vm.context, &devices, &vm_services);
        match action {
            Action::Resume => continue,
            Action::Wait => {}
            Action::StopVm => {
                log!(
                    "two VMs: '{}' powered off after {} exits",
                    vm.name,
                    vm.exits
                );
                vm.running = false;
            }
            other => {
                log!(
                    "two VMs: '{}' unexpected {:?} at pc {:#010x}",
                    vm.name,
                    other,
                    vm.context.pc
                );
                vm.running = false;
            }
        }
        // Round robin: the other VM if it still runs.
        let other = 1 - current;
        if vms[other].running {
            current = other;
            switches += 1;
        }
    }
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
    for (index, vm) in vms.iter().enumerate() {
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
        let ok = report == Some([1, 5, vm.id as u32]) && page == [vm.id as u32, 4] && !vm.running;
        passed &= ok;
    }
    log!(
        "two VMs: {} switches; {}",
        switches,
        if passed { "passed" } else { "FAILED" }
    );
    crate::io::stop(if passed {
        ExitCode::Success
    } else {
        ExitCode::VmFailed
    })
}
