//! A VM's interrupt wiring: which virtual device drives which line of its
//! virtual GIC, as the kernel's `VirtualInterrupts`.
//!
//! | source | GIC id | trigger |
//! |---|---|---|
//! | virtual timer (CNTV) | 27 (PPI 11) | level, see [`crate::virtual_timer`] |
//! | virtual PL011 | 33 (SPI 1) | level: the UART's masked interrupt status (MIS) is non-zero |
//!
//! The kernel asks [`GuestInterrupts::irq_pending`] before every entry
//! (it drives HCR.VI) and when deciding whether a waiting VM can run; the
//! UART's line is brought up to date there, so a byte received from the
//! console or a guest's read that empties the FIFO is reflected at once.

use crate::virtual_gic::VirtualGic;
use crate::virtual_timer::{evaluate, TIMER_INTERRUPT};
use crate::virtual_uart::VirtualUart;
use hyp::kernel::{VirtualInterrupts, VirtualTimerState};

/// The virtual UART's interrupt id (SPI 1).
pub const UART_INTERRUPT: u32 = 33;

/// One VM's interrupt sources and controller.
pub struct GuestInterrupts<'a> {
    gic: &'a VirtualGic,
    uart: &'a VirtualUart<'a>,
}

impl core::fmt::Debug for GuestInterrupts<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("GuestInterrupts")
    }
}

impl<'a> GuestInterrupts<'a> {
    /// Wires `uart` and the virtual timer into `gic`.
    pub fn new(gic: &'a VirtualGic, uart: &'a VirtualUart<'a>) -> Self {
        GuestInterrupts { gic, uart }
    }
}

impl VirtualInterrupts for GuestInterrupts<'_> {
    fn irq_pending(&self) -> bool {
        self.gic
            .set_level(UART_INTERRUPT, self.uart.interrupt_pending());
        self.gic.pending_irq()
    }

    fn update_timer(&self, timer: VirtualTimerState, now: u64) -> Option<u64> {
        let output = evaluate(timer, now);
        self.gic.set_level(TIMER_INTERRUPT, output.level);
        output.wake_at
    }
}
