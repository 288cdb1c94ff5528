// SPDX-License-Identifier: MIT OR Apache-2.0
//! Reset entry point and the Hyp vector table, in assembly.
//!
//! The boot CPU enters `_start` in Hyp mode with the MMU and caches off (on
//! QEMU, from the ELF entry point; on hardware, from a boot loader that
//! leaves the core in Hyp). `_start` installs the vector table before
//! anything else can fault, sets up CPU 0's stack, clears `.bss` and calls
//! the board's `capvisor_main`, which never returns. A machine that starts
//! every core at the entry point has the others (MPIDR affinity other than
//! 0) wait in `_start` for ever: Capvisor starts its secondary CPUs itself.
//!
//! A secondary CPU, started by the boot CPU with PSCI CPU_ON
//! ([`crate::psci`]), enters `_start_secondary` in Hyp mode, MMU off, with
//! r0 = its CPU number (the PSCI context): it installs the same vectors,
//! takes its own stack and calls the board's
//! `capvisor_secondary_main(cpu)`, which never returns (only a board that
//! starts secondary CPUs defines it).
//!
//! Every exception taken in Hyp mode is a hypervisor bug (design rule 1,
//! `docs/architecture.md`), so
//! each vector switches to its CPU's own fault stack (the normal stack may
//! be the thing that overflowed), saves a [`HypExceptionFrame`] there and
//! calls [`crate::exceptions::armv7a_hyp_fatal`], which prints a decoded
//! report naming the CPU and stops the machine. The guest-trap entry (0x14)
//! and interrupts taken from a guest (0x18, 0x1c) are guest exits, handed
//! to [`crate::world_switch`].
//!
//! Symbols the board's linker script must define (the shared
//! `boards/components/layout.ld` does):
//!
//! | symbol | meaning |
//! |---|---|
//! | `__bss_start`, `__bss_end` | `.bss`, both 4-byte aligned |
//! | `__stack_top` | CPU 0's initial SP_hyp (one past the top of its stack) |
//! | `__cpu_stacks_size` | the distance between two CPUs' stack slots: CPU n's stack top is `__stack_top + n * __cpu_stacks_size` |
//! | `__fault_stack_top_0` .. `_3` | each CPU's SP on the fatal exception path |
//!
//! [`HypExceptionFrame`]: crate::fault::HypExceptionFrame

#[cfg(target_arch = "arm")]
core::arch::global_asm!(
    r#"
    .arch_extension virt
    .arm

    .section .text.boot, "ax"
    .global _start
    .type _start, %function
_start:
    @ On entry: r0-r2 hold boot-loader arguments, which Capvisor ignores.
    @ Mask asynchronous aborts, IRQs and FIQs until the core wants them.
    cpsid   aif
    @ r0 := MPIDR; any affinity field (Aff2-Aff0, bits 23:0) other than 0:
    @ not the boot CPU, which a machine may start here too: wait for ever.
    mrc     p15, 0, r0, c0, c0, 5
    tst     r0, #0x00ff0000
    tsteq   r0, #0x0000ff00
    tsteq   r0, #0x000000ff
4:  wfene
    bne     4b
    @ r0 := address of the vector table; HVBAR := r0. From here on any
    @ exception prints a report instead of jumping to garbage.
    ldr     r0, =hyp_vectors
    mcr     p15, 4, r0, c12, c0, 0
    isb
    @ SP_hyp := top of the boot stack (full descending).
    ldr     sp, =__stack_top
    @ Clear .bss: r0 = cursor, r1 = end, r2 = zero.
    ldr     r0, =__bss_start
    ldr     r1, =__bss_end
    mov     r2, #0
1:  cmp     r0, r1
    strlo   r2, [r0], #4
    blo     1b
    @ Hand over to the board; capvisor_main never returns.
    bl      capvisor_main
2:  wfi
    b       2b
    .size _start, . - _start

    @ In its own section, which the linker drops from a board that never
    @ starts a secondary CPU (nothing then needs capvisor_secondary_main).
    .section .text.secondary, "ax"
    .global _start_secondary
    .type _start_secondary, %function
_start_secondary:
    @ On entry (PSCI CPU_ON): Hyp mode, MMU off, r0 = this CPU's number.
    cpsid   aif
    @ HVBAR := the vector table (r1 scratch).
    ldr     r1, =hyp_vectors
    mcr     p15, 4, r1, c12, c0, 0
    isb
    @ SP_hyp := __stack_top + r0 * __cpu_stacks_size (r1, r2 scratch).
    ldr     r1, =__cpu_stacks_size
    mul     r2, r0, r1
    ldr     r1, =__stack_top
    add     sp, r1, r2
    @ capvisor_secondary_main(r0 = CPU number) never returns.
    bl      capvisor_secondary_main
5:  wfi
    b       5b
    .size _start_secondary, . - _start_secondary

    .section .text.vectors, "ax"
    .balign 32
    .global hyp_vectors
hyp_vectors:
    b       hyp_vector_reset        @ 0x00 (not used by Hyp; fatal)
    b       hyp_vector_undefined    @ 0x04 undefined instruction in Hyp
    b       hyp_vector_call         @ 0x08 HVC/SVC executed in Hyp
    b       hyp_vector_prefetch     @ 0x0c prefetch abort in Hyp
    b       hyp_vector_data         @ 0x10 data abort in Hyp
    b       hyp_vector_trap         @ 0x14 trap from a guest
    b       hyp_vector_irq          @ 0x18 IRQ
    b       hyp_vector_fiq          @ 0x1c FIQ

    @ fatal_entry N: save the interrupted context as a HypExceptionFrame on
    @ the fault stack and go to the common tail with r1 = N (the vector).
    @ Frame layout (17 words): r0-r12 at +0, sp at +52, lr at +56,
    @ ELR_hyp at +60, SPSR_hyp at +64.
    .macro fatal_entry vector
    @ HTPIDR := interrupted SP (Hyp has no other free register here).
    mcr     p15, 4, sp, c13, c0, 2
    @ SP := this CPU's number: MPIDR.Aff0 (Capvisor starts CPUs 0 to 3).
    mrc     p15, 0, sp, c0, c0, 5
    and     sp, sp, #3
    @ SP := its fault stack top, from the table below (PC reads as this
    @ instruction + 8: the table's first word).
    ldr     sp, [pc, sp, lsl #2]
    b       6f
    .word   __fault_stack_top_0
    .word   __fault_stack_top_1
    .word   __fault_stack_top_2
    .word   __fault_stack_top_3
6:
    @ Reserve the frame and store r0-r12 in it.
    sub     sp, sp, #68
    stmia   sp, {{r0-r12}}
    @ r1 := vector number (argument 2 of armv7a_hyp_fatal).
    mov     r1, #\vector
    b       hyp_fatal_common
    .endm

hyp_vector_reset:       fatal_entry 0
hyp_vector_undefined:   fatal_entry 1
hyp_vector_call:        fatal_entry 2
hyp_vector_prefetch:    fatal_entry 3
hyp_vector_data:        fatal_entry 4
    @ 0x14 is only ever taken from a guest: hand it to the world switch.
hyp_vector_trap:
    push    {{r0, r1}}                  @ free two registers (SP_hyp = host frame)
    mov     r1, #5                      @ r1 := vector number
    b       armv7a_guest_exit

    @ guest_interrupt N: an IRQ/FIQ from a guest is an exit; from Hyp mode
    @ (which runs with interrupts masked) it is a fatal bug.
    .macro guest_interrupt vector
    push    {{r0, r1}}
    mrs     r0, spsr                    @ r0 := interrupted mode
    and     r0, r0, #0x1f
    cmp     r0, #0x1a
    mov     r1, #\vector
    bne     armv7a_guest_exit           @ from a guest: an exit
    pop     {{r0, r1}}                  @ from Hyp: restore and report
    fatal_entry \vector
    .endm

hyp_vector_irq:         guest_interrupt 6
hyp_vector_fiq:         guest_interrupt 7

hyp_fatal_common:
    @ r0 := interrupted SP from HTPIDR -> frame.sp
    mrc     p15, 4, r0, c13, c0, 2
    str     r0, [sp, #52]
    @ lr is not banked in Hyp: it is the interrupted code's LR -> frame.lr
    str     lr, [sp, #56]
    @ ELR_hyp (preferred return address) -> frame.elr_hyp
    mrs     r0, elr_hyp
    str     r0, [sp, #60]
    @ SPSR (SPSR_hyp; the banked form is UNDEFINED in Hyp) -> frame.spsr_hyp
    mrs     r0, spsr
    str     r0, [sp, #64]
    @ armv7a_hyp_fatal(r0 = &frame, r1 = vector) never returns.
    mov     r0, sp
    bl      armv7a_hyp_fatal
3:  wfi
    b       3b
"#
);
