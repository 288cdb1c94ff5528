//! Two built-in guests (`test-two-vms` feature) run the same code at the
//! same IPAs and take turns at every WFI: each writes its id into its private
//! page at IPA 0x4000_1000 and, after the other VM has run, finds its own
//! values still there, because stage 2 backs that IPA with different host
//! pages per VM; likewise its VFP registers d0 and d31, which the hypervisor
//! switches with the VM. Checked from both sides: the guests' reports and
//! the host pages themselves. A third VM that faults inside its own vectors
//! is stopped by its fault policy while the two others run to the end.

use capvisor_tests::{assert_console_has, assert_console_lacks, boot};

#[test]
fn two_vms_take_turns_without_seeing_each_other() {
    let outcome = boot(&["test-two-vms"]);
    let console = &outcome.transcript;
    assert_console_has(
        console,
        "two VMs: 'alpha' (VMID 1): code at IPA 0x40000000, private page IPA 0x40001000 -> host 0x80000000",
    );
    assert_console_has(
        console,
        "two VMs: 'beta' (VMID 2): code at IPA 0x40000000, private page IPA 0x40001000 -> host 0x80200000",
    );
    // ok = 1, 5 rounds, the id each VM was told by the hypervisor service.
    assert_console_has(
        console,
        "two VMs: 'alpha' report Some([1, 5, 1]); its host page holds id 1 round 4",
    );
    assert_console_has(
        console,
        "two VMs: 'beta' report Some([1, 5, 2]); its host page holds id 2 round 4",
    );
    // Eight exits each under the core's exit loop: VM_ID, five WFIs (each a
    // yield to the other VM), the report, SYSTEM_OFF.
    assert_console_has(
        console,
        "two VMs: 'beta' Stopped after 8 exits (5 waits, 3 hypercalls, 0 faults reflected)",
    );
    // The broken VM's vectors point at nothing: the load is reflected, the
    // vector faults, is reflected again... three times, then its policy
    // stops it. The other two are untouched.
    assert_console_has(
        console,
        "two VMs: 'alpha' Stopped after 8 exits (5 waits, 3 hypercalls, 0 faults reflected)",
    );
    assert_console_has(
        console,
        "two VMs: 'broken' Faulted after 4 exits (0 waits, 0 hypercalls, 3 faults reflected)",
    );
    assert_console_has(console, "two VMs: AllStopped after 10 yields; passed");
    assert_console_lacks(console, "unexpected");
    assert_eq!(outcome.status, 0, "{console}");
}
