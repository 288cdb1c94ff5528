//! Console output for the board, and the panic handler.
//!
//! The hypervisor's messages go to UART0 by polling, each line prefixed with
//! `capvisor: `. The panic handler builds its own UART driver at the fixed
//! address instead of borrowing the board's, so it works whatever state the
//! rest of the system is in, prints the message and where it came from
//! (for a Hyp-mode exception, the decoded fault report), and stops QEMU with
//! [`ExitCode::Fatal`].

use core::fmt::{self, Write};
use core::sync::atomic::{AtomicBool, Ordering};
use hyp::debug::{LinePrefixer, PREFIX};
use hyp::exit::ExitCode;
use integrator_cp::uart::Pl011;
use integrator_cp::UART0_BASE;

/// The console UART. The driver is only a typed pointer, so each user makes
/// its own (the pattern of Tock boards' `io.rs`); polled output needs no
/// shared driver state.
pub fn console() -> Pl011 {
    // SAFETY: UART0 is identity mapped as Device memory before and after the
    // MMU is enabled (it is in the Hyp memory map), and only the console
    // functions of this board use it.
    unsafe { Pl011::new(UART0_BASE) }
}

/// Prints `args` on the console, each line prefixed with `capvisor: `.
pub fn print(args: fmt::Arguments) {
    let console = console();
    let mut writer = LinePrefixer::new(&console, PREFIX);
    // Writing to the UART cannot fail.
    let _ = writer.write_fmt(args);
}

/// `println!` for the hypervisor's own messages.
#[macro_export]
macro_rules! log {
    () => { $crate::io::print(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::io::print(format_args!("{}\n", format_args!($($arg)*))) };
}

/// Prints why boot cannot go on and stops with [`ExitCode::BootRefused`].
pub fn refuse_boot(reason: fmt::Arguments) -> ! {
    print(format_args!("boot refused: {}\n", reason));
    console().flush();
    armv7a::semihosting::exit(ExitCode::BootRefused.status())
}

/// Waits for the console to drain and stops QEMU with `code`.
pub fn stop(code: ExitCode) -> ! {
    console().flush();
    armv7a::semihosting::exit(code.status())
}

/// Set when the panic handler starts, so that a panic while printing a panic
/// stops at once.
static PANICKING: AtomicBool = AtomicBool::new(false);

#[cfg(not(test))]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    if PANICKING.load(Ordering::Relaxed) {
        armv7a::semihosting::exit(ExitCode::Fatal.status());
    }
    PANICKING.store(true, Ordering::Relaxed);
    // Nothing else runs after a panic; polled writes need no driver state.
    let uart = console();
    // End whatever partial line was on the console, then report.
    uart.write_str_crlf("\n");
    let mut writer = LinePrefixer::new(&uart, PREFIX);
    let _ = writeln!(writer, "FATAL: {}", info.message());
    if let Some(location) = info.location() {
        let _ = writeln!(
            writer,
            "panicked at {}:{}:{}",
            location.file(),
            location.line(),
            location.column()
        );
    }
    let _ = writeln!(
        writer,
        "stopping with exit status {}",
        ExitCode::Fatal.status()
    );
    uart.flush();
    armv7a::semihosting::exit(ExitCode::Fatal.status())
}
