// SPDX-License-Identifier: MIT OR Apache-2.0
//! The exit status the hypervisor reports when it stops.
//!
//! On QEMU the board hands this to semihosting `SYS_EXIT_EXTENDED`, so the
//! shell (and the integration tests) see it as QEMU's own exit status.
//!
//! | status | meaning |
//! |---|---|
//! | 0 | every VM stopped and passed (or there were none to run) |
//! | 1 | at least one VM failed |
//! | 2 | fatal: a panic or an exception taken in Hyp mode |
//! | 3 | boot refused: a configuration or coverage check failed |

/// Why the hypervisor stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum ExitCode {
    /// Every VM stopped and passed.
    Success = 0,
    /// At least one VM failed.
    VmFailed = 1,
    /// A panic or an exception taken in Hyp mode.
    Fatal = 2,
    /// Boot refused by a check that runs before any VM starts.
    BootRefused = 3,
}

impl ExitCode {
    /// The numeric status seen by the host.
    pub const fn status(self) -> u32 {
        self as u32
    }
}
