// SPDX-License-Identifier: MIT OR Apache-2.0
//! Any sequence of guest accesses (every offset, size and value) and
//! interrupt-line changes on a VM's virtual GIC and PL011: no panic, and
//! the GIC keeps its architected invariants (IAR answers an id below the
//! number of interrupts or 1023; the UART's FIFO never overflows).
#![no_main]

use capsules::virtual_gic::{VirtualGic, NUM_INTERRUPTS, SPURIOUS};
use capsules::virtual_uart::VirtualUart;
use hyp::dispatch::MmioDevice;
use hyp::hil::console::ConsoleOutput;
use hyp::trap::AccessSize;
use libfuzzer_sys::fuzz_target;

struct Sink;
impl ConsoleOutput for Sink {
    fn write(&self, _bytes: &[u8]) {}
}

fn size(code: u8) -> AccessSize {
    match code % 4 {
        0 => AccessSize::Byte,
        1 => AccessSize::Halfword,
        2 => AccessSize::Word,
        _ => AccessSize::Doubleword,
    }
}

fuzz_target!(|operations: Vec<(u8, u16, u8, u32)>| {
    let gic = VirtualGic::new();
    let sink = Sink;
    let uart = VirtualUart::new(&sink, gic.line(capsules::virtual_uart::ROW.interrupt.unwrap_or(33)));
    let distributor = gic.distributor();
    let cpu = gic.cpu_interface();
    for (kind, offset, width, value) in operations {
        let offset = u64::from(offset);
        let width = size(width);
        let _ = match kind % 9 {
            0 => distributor.read(offset % 0x1000, width).map(|_| ()),
            1 => distributor.write(offset % 0x1000, width, value),
            2 => cpu.read(offset % 0x2000, width).map(|_| ()),
            3 => cpu.write(offset % 0x2000, width, value),
            4 => uart.read(offset % 0x1000, width).map(|_| ()),
            5 => uart.write(offset % 0x1000, width, value),
            6 => {
                gic.set_level(value % 128, offset % 2 == 0);
                Ok(())
            }
            7 => {
                gic.trigger(value % 128);
                Ok(())
            }
            _ => {
                uart.receive(value as u8);
                Ok(())
            }
        };
        if let Ok(iar) = cpu.read(0xc, AccessSize::Word) {
            let id = iar & 0x3ff;
            assert!(id < NUM_INTERRUPTS || id == SPURIOUS, "IAR {iar:#x}");
        }
        assert!(uart.receive_room() <= capsules::virtual_uart::RX_FIFO_DEPTH);
    }
});
