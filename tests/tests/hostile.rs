//! The hostile-guest suite: a guest that probes every address it could
//! guess, aims unemulatable accesses at devices, sweeps hypercall ids with
//! hostile arguments, writes random values to every device register and
//! storms its own timer interrupt, beside a victim VM that must keep making
//! progress. Every case must be contained, the victim must progress in
//! every 100 ms, and the hypervisor must take no Hyp-mode exception.

use capvisor_tests::{assert_console_has, assert_console_lacks, boot, counter, vm_status_line};

#[test]
fn a_hostile_guest_is_contained_and_the_victim_keeps_running() {
    let outcome = boot(&["test-hostile"]);
    let console = &outcome.transcript;
    assert_console_lacks(console, "Hyp-mode exception");
    assert_console_lacks(console, "unexpected exception");
    let summary = console
        .lines()
        .find(|line| line.contains("cases tried"))
        .unwrap_or_else(|| panic!("no summary from the hostile guest:\n{console}"));
    let tried = counter(summary, "hostile:");
    let contained = counter(summary, "tried,");
    assert!(tried >= 4700, "{summary}");
    assert_eq!(contained, tried, "{summary}");
    let storm = console
        .lines()
        .find(|line| line.contains("timer interrupts in the 100 ms storm"))
        .unwrap_or_else(|| panic!("no storm line:\n{console}"));
    assert!(counter(storm, "hostile:") > 100, "{storm}");
    // The victim made progress in every 100 ms, at least a fifth of what
    // it made alone (a fair share with one other VM is a half).
    let victim = console
        .lines()
        .find(|line| line.contains("victim: least"))
        .unwrap_or_else(|| panic!("no progress line from the victim:\n{console}"));
    let (least, most) = (counter(victim, "least"), counter(victim, "most"));
    assert!(least * 5 >= most, "{victim}");
    // The hypervisor's own counters: 32 probes and 9 accesses without a
    // syndrome became aborts in the hostile guest, none in the victim.
    let hostile = vm_status_line(console, "hostile");
    assert!(hostile.contains("PASSED"), "{hostile}");
    assert_eq!(counter(hostile, "injected faults"), 41, "{hostile}");
    let victim_status = vm_status_line(console, "victim");
    assert!(victim_status.contains("PASSED"), "{victim_status}");
    assert_eq!(
        counter(victim_status, "injected faults"),
        0,
        "{victim_status}"
    );
    assert_console_has(console, "capvisor: 2 of 2 VMs passed");
    println!(
        "hostile suite: {tried} cases tried, {contained} contained, 0 Hyp-mode exceptions; victim {least}..{most} iterations per 100 ms"
    );
    assert_eq!(outcome.status, 0, "{console}");
}
