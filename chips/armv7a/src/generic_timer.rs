// SPDX-License-Identifier: MIT OR Apache-2.0
//! The generic timer's counter as the hypervisor's clock, and the
//! per-VM virtual timer registers.
//!
//! CNTPCT counts at CNTFRQ (62.5 MHz on QEMU's Cortex-A15) in every mode
//! and never stops: [`Counter`] is the monotonic clock of
//! `hyp::hil::time::Clock`. A guest sees CNTVCT = CNTPCT - CNTVOFF, with
//! CNTVOFF chosen per VM by the hypervisor ([`set_virtual_offset`]). The
//! timer interrupts themselves are not wired on Integrator/CP, so the
//! hypervisor reads each guest's CNTV_CTL/CNTV_CVAL ([`virtual_timer`])
//! and raises the guest's timer interrupt itself.

#[cfg(target_arch = "arm")]
use hyp::hil::time::Clock;

/// The physical counter, CNTPCT.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counter;

#[cfg(target_arch = "arm")]
impl Clock for Counter {
    fn now(&self) -> u64 {
        // The ISB keeps the read from being taken early, before the code
        // that asked for the time.
        aarch32_cpu::asm::isb();
        aarch32_cpu::register::CntPct::read().0
    }

    fn frequency(&self) -> u32 {
        aarch32_cpu::register::Cntfrq::read().0
    }
}

/// Sets CNTVOFF, the offset of the current guest's virtual counter.
#[cfg(target_arch = "arm")]
pub fn set_virtual_offset(offset: u64) {
    aarch32_cpu::register::CntVoff::write(aarch32_cpu::register::CntVoff(offset));
}

/// The running guest's CNTV_CTL, live from the CPU.
#[cfg(target_arch = "arm")]
pub fn virtual_timer_control() -> u32 {
    let control: u32;
    // SAFETY: reading CNTV_CTL has no side effects.
    unsafe {
        core::arch::asm!(
            "mrc p15, 0, {control}, c14, c3, 1",
            control = out(reg) control,
            options(nomem, nostack)
        )
    };
    control
}

/// The running guest's CNTV_CVAL, live from the CPU.
#[cfg(target_arch = "arm")]
pub fn virtual_timer_compare() -> u64 {
    let (low, high): (u32, u32);
    // SAFETY: reading CNTV_CVAL has no side effects.
    unsafe {
        core::arch::asm!(
            "mrrc p15, 3, {low}, {high}, c14",
            low = out(reg) low,
            high = out(reg) high,
            options(nomem, nostack)
        )
    };
    (u64::from(high) << 32) | u64::from(low)
}

/// The Hyp physical timer (CNTHP) as the hypervisor's alarm, against
/// [`Counter`]: on boards that wire the generic timer's interrupts (every
/// GIC-400 SoC, QEMU virt: PPI 10, id 26). Deadlines are counter ticks, so
/// no conversion is needed. CNTHP_CVAL is written with `MCRR p15, 6, ...,
/// c14` and CNTHP_CTL (`p15, 4, c14, c2, 1`: ENABLE bit 0, IMASK bit 1,
/// ISTATUS bit 2) with `MCR`.
#[derive(Clone, Copy, Debug, Default)]
pub struct HypTimerAlarm;

/// CNTHP_CTL.ENABLE.
#[cfg(target_arch = "arm")]
const CNTHP_ENABLE: u32 = 1 << 0;
/// CNTHP_CTL.ISTATUS: the condition is met.
#[cfg(target_arch = "arm")]
const CNTHP_ISTATUS: u32 = 1 << 2;

#[cfg(target_arch = "arm")]
impl HypTimerAlarm {
    /// Turns the timer off (its state out of reset is UNKNOWN).
    pub fn set_control_off(&self) {
        Self::set_control(0);
    }

    fn control() -> u32 {
        let control: u32;
        // SAFETY: reading CNTHP_CTL has no side effects.
        unsafe {
            core::arch::asm!("mrc p15, 4, {}, c14, c2, 1", out(reg) control, options(nomem, nostack))
        };
        control
    }

    fn set_control(control: u32) {
        // SAFETY: CNTHP belongs to the hypervisor; writing its control only
        // changes when its interrupt (the hypervisor's alarm) is raised.
        unsafe {
            core::arch::asm!("mcr p15, 4, {}, c14, c2, 1", in(reg) control, options(nomem, nostack))
        };
        aarch32_cpu::asm::isb();
    }
}

#[cfg(target_arch = "arm")]
impl hyp::hil::time::Alarm for HypTimerAlarm {
    fn set_alarm(&self, deadline: u64) {
        // SAFETY: CNTHP_CVAL belongs to the hypervisor (as above).
        unsafe {
            core::arch::asm!(
                "mcrr p15, 6, {low}, {high}, c14",
                low = in(reg) deadline as u32,
                high = in(reg) (deadline >> 32) as u32,
                options(nomem, nostack)
            )
        };
        Self::set_control(CNTHP_ENABLE);
    }

    fn disarm(&self) {
        Self::set_control(0);
    }

    fn acknowledge(&self) -> bool {
        let fired = Self::control() & CNTHP_ISTATUS != 0;
        if fired {
            // One-shot: off until set again (the level output drops).
            Self::set_control(0);
        }
        fired
    }
}
