// SPDX-License-Identifier: MIT OR Apache-2.0
//! The software interrupt backend: a whole GIC emulated, the vCPU's IRQ
//! input driven directly, the virtual timer evaluated by the hypervisor.
//!
//! For boards without a GIC virtualization interface (Integrator/CP has no
//! GIC at all, and its CPU's timer outputs are not wired), whose VMs have
//! one vCPU: the backend serves vCPU 0 of its [`VirtualGic`]. The VM's
//! interrupt sources are wired into the GIC:
//!
//! | source | GIC id | trigger |
//! |---|---|---|
//! | virtual timer (CNTV) | 27 (PPI 11) | level, see [`crate::virtual_timer`] |
//! | virtual PL011 | 33 (SPI 1) | level: the UART's masked interrupt status (MIS) is non-zero |
//!
//! Before every entry the backend evaluates the guest's timer (one CP15
//! read while it is off) and, when anything changed, sets the vCPU's IRQ
//! input ([`VirtualIrqLine`], HCR.VI on ARMv7-A) from the emulated CPU
//! interface. The IRQ input is the backend's context: it is loaded into
//! the CPU when the VM is switched in.

use super::{VirtualGic, UART_INTERRUPT};
use crate::virtual_timer::{evaluate, TIMER_INTERRUPT};
use crate::virtual_uart::VirtualUart;
use core::cell::Cell;
use hyp::interrupts::{InterruptBackend, Poll, VirtualIrqLine, VirtualTimer, VirtualTimerState};

/// The vCPU a software backend serves.
const VCPU: usize = 0;

/// One VM's software interrupt delivery.
pub struct SoftwareBackend<'a> {
    gic: &'a VirtualGic,
    uart: &'a VirtualUart<'a>,
    irq_line: &'a dyn VirtualIrqLine,
    /// Whether the vCPU's IRQ input is asserted (the context).
    irq: Cell<bool>,
    /// Whether the timer's line was last left high.
    timer_line: Cell<bool>,
}

impl core::fmt::Debug for SoftwareBackend<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SoftwareBackend")
            .field("irq", &self.irq.get())
            .finish()
    }
}

impl<'a> SoftwareBackend<'a> {
    /// Wires `uart` and the virtual timer into `gic`, delivering through
    /// `irq_line`.
    pub fn new(
        gic: &'a VirtualGic,
        uart: &'a VirtualUart<'a>,
        irq_line: &'a dyn VirtualIrqLine,
    ) -> Self {
        SoftwareBackend {
            gic,
            uart,
            irq_line,
            irq: Cell::new(false),
            timer_line: Cell::new(false),
        }
    }

    /// Brings the timer's line up to date; returns when it fires next and
    /// whether the line moved. A timer that is off, with its line already
    /// low, costs one register read: most entries find it so.
    fn update_timer(&self, timer: &dyn VirtualTimer, now: &dyn Fn() -> u64) -> (Option<u64>, bool) {
        let control = timer.virtual_timer_control();
        if !VirtualTimerState::control_armed(control) && !self.timer_line.get() {
            return (None, false);
        }
        let state = VirtualTimerState {
            control,
            deadline: timer.virtual_timer_deadline(),
        };
        let output = evaluate(state, now());
        self.gic
            .set_private_level(VCPU, TIMER_INTERRUPT, output.level);
        let moved = self.timer_line.replace(output.level) != output.level;
        (output.wake_at, moved || output.level)
    }

    /// Whether the emulated CPU interface signals an IRQ, with the UART's
    /// line brought up to date first.
    fn irq_pending(&self) -> bool {
        self.gic
            .set_level(UART_INTERRUPT, self.uart.interrupt_pending());
        self.gic.pending_irq()
    }
}

impl InterruptBackend for SoftwareBackend<'_> {
    fn switch_in(&self) {
        self.irq_line.set(self.irq.get());
    }

    fn switch_out(&self) {}

    fn before_entry(
        &self,
        timer: &dyn VirtualTimer,
        now: &dyn Fn() -> u64,
        changed: bool,
    ) -> Option<u64> {
        let (wake_at, timer_moved) = self.update_timer(timer, now);
        if changed || timer_moved {
            let pending = self.irq_pending();
            if pending != self.irq.replace(pending) {
                self.irq_line.set(pending);
            }
        }
        wake_at
    }

    fn poll(&self, timer: &dyn VirtualTimer, now: u64) -> Poll {
        let (wake_at, _) = self.update_timer(timer, &|| now);
        let pending = self.irq_pending();
        Poll {
            pending,
            wake_at: if pending { None } else { wake_at },
        }
    }

    fn reset(&self) {
        self.gic.reset();
        self.timer_line.set(false);
        self.irq.set(false);
        self.irq_line.set(false);
    }

    /// The GIC's kicks: none with one vCPU.
    fn take_kicks(&self) -> u32 {
        self.gic.take_kicks()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::Recorder;
    use hyp::dispatch::MmioDevice;
    use hyp::trap::AccessSize::Word;

    struct Line(Cell<Option<bool>>);
    impl VirtualIrqLine for Line {
        fn set(&self, asserted: bool) {
            self.0.set(Some(asserted));
        }
    }

    struct Timer(VirtualTimerState);
    impl VirtualTimer for Timer {
        fn virtual_timer_control(&self) -> u32 {
            self.0.control
        }
        fn virtual_timer_deadline(&self) -> u64 {
            self.0.deadline
        }
    }

    fn running(gic: &VirtualGic) {
        let (gicd, gicc) = (gic.distributor(), gic.cpu_interface());
        gicd.write(0x000, Word, 1).unwrap();
        gicd.write(0x100, Word, 1 << TIMER_INTERRUPT).unwrap();
        gicc.write(0x004, Word, 0xf0).unwrap();
        gicc.write(0x000, Word, 1).unwrap();
    }

    #[test]
    fn the_timer_raises_the_irq_input_at_its_deadline_and_reset_lowers_it() {
        let console = Recorder::default();
        let uart = VirtualUart::new(&console);
        let gic = VirtualGic::new();
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &uart, &line);
        running(&gic);
        let timer = Timer(VirtualTimerState {
            control: VirtualTimerState::ENABLE,
            deadline: 1000,
        });
        assert_eq!(backend.before_entry(&timer, &|| 999, true), Some(1000));
        assert_eq!(line.0.get(), None, "not asserted, never written");
        assert_eq!(backend.before_entry(&timer, &|| 1000, false), None);
        assert_eq!(line.0.get(), Some(true), "the timer's line moved");
        assert!(backend.poll(&timer, 1000).pending);
        backend.reset();
        assert_eq!(line.0.get(), Some(false));
        assert!(!gic.pending_irq());
        let off = Timer(VirtualTimerState::default());
        assert_eq!(backend.poll(&off, 5000), Poll::default());
    }

    #[test]
    fn switching_in_loads_the_vms_irq_input() {
        let console = Recorder::default();
        let uart = VirtualUart::new(&console);
        let gic = VirtualGic::new();
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &uart, &line);
        running(&gic);
        gic.set_level(TIMER_INTERRUPT, true);
        let off = Timer(VirtualTimerState::default());
        backend.before_entry(&off, &|| 0, true);
        assert_eq!(line.0.get(), Some(true));
        line.0.set(Some(false)); // another VM's input
        backend.switch_in();
        assert_eq!(line.0.get(), Some(true));
    }

    #[test]
    fn kicks_are_the_gics() {
        let console = Recorder::default();
        let uart = VirtualUart::new(&console);
        let gic = VirtualGic::with_vcpus(2);
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &uart, &line);
        running(&gic);
        gic.distributor().write(0xf00, Word, 0x0002_0001).unwrap();
        assert_eq!(backend.take_kicks(), 1 << 1, "an SGI to vCPU 1");
        assert_eq!(gic.take_kicks(), 0, "taken");
    }
}
