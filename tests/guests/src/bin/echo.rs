// SPDX-License-Identifier: MIT OR Apache-2.0
//! Console input through the virtual PL011's receive interrupt: the guest
//! enables RXIM/RTIM and SPI 1 (id 33) at the GIC, sleeps (WFI with IRQs
//! masked, so no wake-up is lost between its check and its wait), and on each
//! interrupt drains the receive FIFO; it reports every character it got and
//! powers off after a `q`. After a `d` it stops reading for 5 s (its UART
//! interrupt masked, asleep on its timer), a VM that does not read its
//! console; then it reads on.
#![no_std]
#![no_main]

use capvisor_test_guests::{
    disable_irqs, enable_irqs, gic, println, read32, set_irq_handler, sleep_until, timer,
    vm_identity, wait_for_interrupt, write32,
};
use core::sync::atomic::{AtomicU32, Ordering};

capvisor_test_guests::guest!("echo", main);

const UART: usize = 0x0900_0000;
const UART_INTERRUPT: u32 = 33;

/// Received bytes, one per slot, 0 when empty (a small queue from the IRQ
/// handler to the program: twice the receive FIFO, which one interrupt may
/// drain at once).
static RECEIVED: [AtomicU32; 128] = [const { AtomicU32::new(0) }; 128];
static WRITE: AtomicU32 = AtomicU32::new(0);

fn on_irq() {
    let iar = gic::acknowledge();
    if iar & 0x3ff == UART_INTERRUPT {
        drain_fifo();
    }
    if iar & 0x3ff != gic::SPURIOUS {
        gic::end(iar);
    }
}

/// Moves what the UART's receive FIFO holds to the queue.
fn drain_fifo() {
    // SAFETY: the virtual UART's FR and DR.
    while unsafe { read32(UART + 0x18) } & (1 << 4) == 0 {
        // SAFETY: as above, DR.
        let byte = unsafe { read32(UART) } & 0xff;
        let slot = WRITE.fetch_add(1, Ordering::Relaxed) as usize % RECEIVED.len();
        RECEIVED[slot].store(byte | 0x100, Ordering::Relaxed);
    }
}

/// Takes the UART's receive interrupt: SPI 1 at the GIC, RXIM and RTIM
/// at the UART, and this guest's handler.
fn listen() {
    gic::init(&[UART_INTERRUPT]);
    set_irq_handler(on_irq);
    // SAFETY: IMSC of the virtual UART: receive and receive-timeout.
    unsafe { write32(UART + 0x38, (1 << 4) | (1 << 6)) };
}

fn main() -> u32 {
    let (_, name, length) = vm_identity();
    let name = core::str::from_utf8(&name[..length]).unwrap_or("?");
    listen();
    println!("echo {}: ready", name);
    let mut read = 0usize;
    // With IRQs masked: handle what the IRQ handler queued, then wait. WFI
    // wakes on a pending interrupt even while IRQs are masked, so one that
    // arrives after the queue was checked is not missed; it is taken when
    // IRQs are unmasked after the wait.
    loop {
        disable_irqs();
        while read < WRITE.load(Ordering::Relaxed) as usize {
            let slot = &RECEIVED[read % RECEIVED.len()];
            let byte = (slot.swap(0, Ordering::Relaxed) & 0xff) as u8;
            read += 1;
            println!("echo {}: got {:?}", name, byte as char);
            if byte == b'q' {
                return 0;
            }
            if byte == b'd' {
                println!("echo {}: not reading for 5 s", name);
                // SAFETY: IMSC of the virtual UART: no interrupts.
                unsafe { write32(UART + 0x38, 0) };
                sleep_until(timer::now() + u64::from(timer::frequency()) * 5);
                // What waited in the FIFO is read before saying so.
                listen();
                drain_fifo();
                println!("echo {}: reading again", name);
            }
        }
        wait_for_interrupt();
        enable_irqs();
    }
}
