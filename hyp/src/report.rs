// SPDX-License-Identifier: MIT OR Apache-2.0
//! The final report's verdicts: which VM passed, which failed, and the
//! exit status the hypervisor stops with.
//!
//! When every VM has stopped, the board prints one line per VM and a
//! summary, then stops with an [`ExitCode`]. What it judges each VM by is
//! what the VM left behind: whether its fault policy stopped it, and the
//! status it reported through Capvisor's service, if any.
//!
//! | stopped by its fault policy | status reported | verdict | shown as |
//! |---|---|---|---|
//! | yes | any or none | [`Verdict::Faulted`] | `FAILED: ` (`FAILED (status n): ` with one) |
//! | no | 0 | [`Verdict::Passed`] | `PASSED (status 0): ` |
//! | no | n ≠ 0 | [`Verdict::Failed`] | `FAILED (status n): ` |
//! | no | none (powered off without reporting, as Linux does) | [`Verdict::Silent`] | nothing: judged by nothing |
//!
//! The exit status ([`Tally::exit_code`]) is [`ExitCode::Success`] unless a
//! VM failed or was stopped by its fault policy, or the run ended some
//! other way than every VM stopping (a policy stopping the hypervisor);
//! then it is [`ExitCode::VmFailed`].

use crate::exit::ExitCode;
use core::fmt;

/// What the report says of one VM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It reported status 0.
    Passed,
    /// It reported a status other than 0.
    Failed,
    /// Its fault policy stopped it (whatever it reported).
    Faulted,
    /// It stopped without reporting a status: not judged.
    Silent,
}

impl Verdict {
    /// The verdict on a VM that its fault policy stopped (`faulted`) or
    /// not, and reported `status` or none.
    pub fn judge(faulted: bool, status: Option<u32>) -> Verdict {
        match (faulted, status) {
            (true, _) => Verdict::Faulted,
            (false, Some(0)) => Verdict::Passed,
            (false, Some(_)) => Verdict::Failed,
            (false, None) => Verdict::Silent,
        }
    }

    /// Whether it makes the run fail.
    pub fn fails(self) -> bool {
        matches!(self, Verdict::Failed | Verdict::Faulted)
    }
}

/// A verdict as the VM's report line starts: `PASSED (status 0): `,
/// `FAILED (status 3): `, `FAILED: `, or nothing for a VM not judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Judged {
    /// The verdict.
    pub verdict: Verdict,
    /// The status the VM reported, if any.
    pub status: Option<u32>,
}

impl Judged {
    /// Judges a VM (see [`Verdict::judge`]).
    pub fn new(faulted: bool, status: Option<u32>) -> Judged {
        Judged {
            verdict: Verdict::judge(faulted, status),
            status,
        }
    }
}

impl fmt::Display for Judged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let word = match self.verdict {
            Verdict::Passed => "PASSED",
            Verdict::Failed | Verdict::Faulted => "FAILED",
            Verdict::Silent => return Ok(()),
        };
        match self.status {
            Some(status) => write!(f, "{} (status {}): ", word, status),
            None => write!(f, "{}: ", word),
        }
    }
}

/// How many VMs got each verdict.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// [`Verdict::Passed`].
    pub passed: usize,
    /// [`Verdict::Failed`].
    pub failed: usize,
    /// [`Verdict::Silent`].
    pub silent: usize,
    /// [`Verdict::Faulted`].
    pub faulted: usize,
}

impl Tally {
    /// Counts one VM's verdict.
    pub fn count(&mut self, verdict: Verdict) {
        match verdict {
            Verdict::Passed => self.passed += 1,
            Verdict::Failed => self.failed += 1,
            Verdict::Silent => self.silent += 1,
            Verdict::Faulted => self.faulted += 1,
        }
    }

    /// The exit status: [`ExitCode::Success`] if no VM failed or was
    /// stopped by its fault policy and the run ended with every VM stopped
    /// (`all_stopped`), [`ExitCode::VmFailed`] otherwise.
    pub fn exit_code(&self, all_stopped: bool) -> ExitCode {
        if self.failed == 0 && self.faulted == 0 && all_stopped {
            ExitCode::Success
        } else {
            ExitCode::VmFailed
        }
    }
}

/// The summary line: `VMs: 2 passed, 0 failed, 1 powered off without a
/// status, 0 stopped by their fault policy`.
impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VMs: {} passed, {} failed, {} powered off without a status, {} stopped by their fault policy",
            self.passed, self.failed, self.silent, self.faulted
        )
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use std::format;

    #[test]
    fn status_zero_passes() {
        let judged = Judged::new(false, Some(0));
        assert_eq!(judged.verdict, Verdict::Passed);
        assert!(!judged.verdict.fails());
        assert_eq!(format!("{judged}"), "PASSED (status 0): ");
    }

    #[test]
    fn any_other_status_fails() {
        for status in [1, 3, u32::MAX] {
            let judged = Judged::new(false, Some(status));
            assert_eq!(judged.verdict, Verdict::Failed);
            assert!(judged.verdict.fails());
            assert_eq!(format!("{judged}"), format!("FAILED (status {status}): "));
        }
    }

    #[test]
    fn no_status_is_not_judged() {
        let judged = Judged::new(false, None);
        assert_eq!(judged.verdict, Verdict::Silent);
        assert!(!judged.verdict.fails());
        assert_eq!(format!("{judged}"), "");
    }

    #[test]
    fn a_vm_its_fault_policy_stopped_fails_whatever_it_reported() {
        let silent = Judged::new(true, None);
        assert_eq!(silent.verdict, Verdict::Faulted);
        assert!(silent.verdict.fails());
        assert_eq!(format!("{silent}"), "FAILED: ");
        // Even one that reported success before its fault.
        let passed = Judged::new(true, Some(0));
        assert_eq!(passed.verdict, Verdict::Faulted);
        assert_eq!(format!("{passed}"), "FAILED (status 0): ");
        assert_eq!(Judged::new(true, Some(5)).verdict, Verdict::Faulted);
    }

    fn tally(verdicts: &[Verdict]) -> Tally {
        let mut tally = Tally::default();
        for &verdict in verdicts {
            tally.count(verdict);
        }
        tally
    }

    #[test]
    fn the_tally_counts_each_verdict_and_prints_the_summary() {
        let tally = tally(&[
            Verdict::Passed,
            Verdict::Silent,
            Verdict::Passed,
            Verdict::Faulted,
            Verdict::Failed,
            Verdict::Passed,
        ]);
        assert_eq!(
            tally,
            Tally {
                passed: 3,
                failed: 1,
                silent: 1,
                faulted: 1
            }
        );
        assert_eq!(
            format!("{tally}"),
            "VMs: 3 passed, 1 failed, 1 powered off without a status, 1 stopped by their fault policy"
        );
    }

    #[test]
    fn the_run_succeeds_only_when_no_vm_failed_and_all_stopped() {
        use Verdict::*;
        assert_eq!(tally(&[Passed, Passed]).exit_code(true), ExitCode::Success);
        // Silent VMs (Linux powering off) do not fail the run.
        assert_eq!(tally(&[Silent, Silent]).exit_code(true), ExitCode::Success);
        assert_eq!(tally(&[]).exit_code(true), ExitCode::Success);
        assert_eq!(tally(&[Passed, Failed]).exit_code(true), ExitCode::VmFailed);
        assert_eq!(
            tally(&[Passed, Faulted]).exit_code(true),
            ExitCode::VmFailed
        );
        // A run that ended otherwise (a policy stopped the hypervisor, the
        // exit budget ran out) fails even with every verdict good.
        assert_eq!(tally(&[Passed]).exit_code(false), ExitCode::VmFailed);
    }
}
