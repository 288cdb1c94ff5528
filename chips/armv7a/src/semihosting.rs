// SPDX-License-Identifier: MIT OR Apache-2.0
//! Semihosting calls: how the hypervisor stops QEMU with an exit status.
//!
//! QEMU, started with `-semihosting-config enable=on,target=native`, treats
//! `svc #0x123456` executed in Hyp mode as a semihosting request (r0 = the
//! operation, r1 = its parameter block). `SYS_EXIT_EXTENDED` (0x20) reports
//! any exit status to the host shell, unlike `SYS_EXIT` (0x18), which can only
//! say 0 or 1 on AArch32. On hardware without a debugger attached the call is
//! an SVC taken to Hyp, which the fatal path turns into a quiet halt.
//!
//! ```no_run
//! armv7a::semihosting::exit(0);
//! ```

/// `SYS_EXIT_EXTENDED` operation number.
pub const SYS_EXIT_EXTENDED: u32 = 0x20;
/// `ADP_Stopped_ApplicationExit`: the reason code for a normal program exit.
pub const ADP_STOPPED_APPLICATION_EXIT: u32 = 0x2_0026;

/// Stops the machine and reports `status` as QEMU's exit status. If no
/// semihosting host answers, waits for interrupts forever.
pub fn exit(status: u32) -> ! {
    let block: [u32; 2] = [ADP_STOPPED_APPLICATION_EXIT, status];
    #[cfg(target_arch = "arm")]
    // SAFETY: the semihosting call reads the two-word block r1 points at and
    // does not return when a host is attached; without one it is an SVC
    // exception handled by the fatal path. No Rust-visible state changes.
    unsafe {
        core::arch::asm!(
            "svc #0x123456",
            inout("r0") SYS_EXIT_EXTENDED => _,
            in("r1") block.as_ptr(),
            options(nostack)
        );
    }
    let _ = block;
    halt()
}

/// Waits for interrupts forever (with interrupts masked: forever).
pub fn halt() -> ! {
    loop {
        #[cfg(target_arch = "arm")]
        aarch32_cpu::asm::wfi();
        #[cfg(not(target_arch = "arm"))]
        core::hint::spin_loop();
    }
}
