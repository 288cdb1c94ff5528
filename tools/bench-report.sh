#!/usr/bin/env bash
# Turns the consoles of a `bench` run (argument 1) and of a `test-two-vms`
# run (argument 2), both under -icount, into BENCHMARKS.md on stdout.
set -euo pipefail
console="$1"
switch_console="$2"
if ! grep -q 'capvisor: bench: done' "$console"; then
    echo "bench-report: the benchmark run did not finish; console follows" >&2
    cat "$console" >&2
    exit 1
fi
cat <<'HEAD'
# Benchmarks

Instruction counts of Capvisor's trap paths on QEMU Integrator/CP
(Cortex-A15), measured by a built-in guest with the cycle counter PMCCNTR
under `-icount shift=0`, where it advances one per instruction executed in
the guest and in Hyp mode. The figures are exact and reproducible; each is
the minimum and the mean over 100 runs, less the cost of the two counter
reads (the baseline row). QEMU updates the counter at translation-block
granularity, so a few instructions of either edge may be folded together.

Made by:

```sh
make bench
```

HEAD
sed -n 's/^capvisor: bench: \(|.*\)$/\1/p' "$console" | tr -d '\r'
switch=$(sed -n 's/^capvisor: two VMs: VM switch .*: \([0-9]*\) cycles.*$/\1/p' "$switch_console" | tr -d '\r')
if [ -z "$switch" ]; then
    echo "bench-report: no VM switch figure in $switch_console" >&2
    exit 1
fi
echo "| VM switch (WFI in one VM to the next instruction of the other) | $switch | $switch | 1 |"
cat <<'TAIL'

The VM switch row comes from the two-VM test image (`test-two-vms`): the
last hand-over from one guest's WFI to the other guest's next instruction,
including the exit, saving and restoring CP15 and VFP/NEON state, the
stage-2 switch (VTTBR with the next VM's VMID: no TLB invalidation), and the
entry.

Targets from the guest-VM issue: null hypercall <= 80, MMIO read <= 250,
VM switch <= 1,500. The current trap path
saves and restores every banked register in both directions and goes
through the generic decode and dispatch; it is not yet tuned.
TAIL
