// SPDX-License-Identifier: MIT OR Apache-2.0
//! The software interrupt backend: a whole GIC emulated, the vCPU's IRQ
//! input driven directly, the virtual timer evaluated by the hypervisor.
//!
//! For boards without a GIC virtualization interface (Integrator/CP has no
//! GIC at all, and its CPU's timer outputs are not wired), whose VMs have
//! one vCPU: the backend serves vCPU 0 of its [`VirtualGic`]. Its own
//! interrupt source is the guest's virtual timer (PPI
//! [`TIMER_INTERRUPT`], level, see [`crate::virtual_timer`]); devices
//! drive their lines in the GIC themselves
//! ([`super::InterruptLine`]), which marks the vCPU stale.
//!
//! Before every entry the backend evaluates the guest's timer (one CP15
//! read while it is off), raises the devices' scheduled lines that are due
//! (one compare while none is scheduled) and, when anything changed (the
//! kernel says so, the timer's line moved, or the GIC is stale), sets the
//! vCPU's IRQ input ([`VirtualIrqLine`], HCR.VI on ARMv7-A) from the
//! emulated CPU interface. The IRQ input is the backend's context: it is
//! loaded into the CPU when the VM is switched in.

use super::VirtualGic;
use crate::virtual_timer::{evaluate, TIMER_INTERRUPT};
use core::cell::Cell;
use hyp::interrupts::{InterruptBackend, Poll, VirtualIrqLine, VirtualTimer, VirtualTimerState};

/// The vCPU a software backend serves.
const VCPU: usize = 0;

/// One VM's software interrupt delivery.
pub struct SoftwareBackend<'a> {
    gic: &'a VirtualGic,
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
    /// Wires the virtual timer into `gic`, delivering through `irq_line`.
    pub fn new(gic: &'a VirtualGic, irq_line: &'a dyn VirtualIrqLine) -> Self {
        SoftwareBackend {
            gic,
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

    /// Raises the devices' scheduled lines due at `now()` (none scheduled:
    /// one compare); returns when the next is due.
    fn raise_due(&self, now: &dyn Fn() -> u64) -> Option<u64> {
        self.gic.next_deadline()?;
        self.gic.raise_due(now())
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
        let lines_due = self.raise_due(now);
        let stale = self.gic.is_stale(VCPU);
        if changed || timer_moved || stale {
            if stale {
                self.gic.seen(VCPU);
            }
            let pending = self.gic.pending_irq();
            if pending != self.irq.replace(pending) {
                self.irq_line.set(pending);
            }
        }
        earliest(wake_at, lines_due)
    }

    fn poll(&self, timer: &dyn VirtualTimer, now: u64) -> Poll {
        let (wake_at, _) = self.update_timer(timer, &|| now);
        let wake_at = earliest(wake_at, self.raise_due(&|| now));
        // Only a look: the IRQ input is set before the next entry (a line
        // raised here left the GIC stale).
        let pending = self.gic.pending_irq();
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

/// The earlier of two optional times.
pub(crate) fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let gic = VirtualGic::new();
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &line);
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
        let gic = VirtualGic::new();
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &line);
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
        let gic = VirtualGic::with_vcpus(2);
        let line = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &line);
        running(&gic);
        gic.distributor().write(0xf00, Word, 0x0002_0001).unwrap();
        assert_eq!(backend.take_kicks(), 1 << 1, "an SGI to vCPU 1");
        assert_eq!(gic.take_kicks(), 0, "taken");
    }

    #[test]
    fn a_device_line_reaches_the_irq_input_without_the_backend_knowing_the_device() {
        let gic = VirtualGic::new();
        let irq = Line(Cell::new(None));
        let backend = SoftwareBackend::new(&gic, &irq);
        running(&gic);
        gic.distributor().write(0x104, Word, 1 << 2).unwrap(); // id 34
        let off = Timer(VirtualTimerState::default());
        backend.before_entry(&off, &|| 0, true);
        assert_eq!(irq.0.get(), None, "nothing pending yet");
        // A device raises its line (outside any exit the kernel marks as
        // a change): the GIC is stale, and the next look presents it.
        let device = gic.line(34);
        device.raise();
        backend.before_entry(&off, &|| 0, false);
        assert_eq!(irq.0.get(), Some(true));
        device.lower();
        backend.before_entry(&off, &|| 0, false);
        assert_eq!(irq.0.get(), Some(false), "lowered with its line");
        // A scheduled line: the backend asks for the alarm, then raises it.
        device.raise_at(Some(500));
        assert_eq!(backend.before_entry(&off, &|| 100, false), Some(500));
        assert_eq!(irq.0.get(), Some(false));
        assert_eq!(
            backend.poll(&off, 200),
            Poll {
                pending: false,
                wake_at: Some(500)
            }
        );
        assert!(backend.poll(&off, 500).pending);
        assert_eq!(backend.before_entry(&off, &|| 500, false), None);
        assert_eq!(irq.0.get(), Some(true));
    }
}
