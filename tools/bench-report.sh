#!/usr/bin/env bash
# Turns the console of a `bench` run (argument 1, under -icount) into
# BENCHMARKS.md on stdout.
set -euo pipefail
console="$1"
if ! grep -q '^bench: done' "$console"; then
    echo "bench-report: the benchmark run did not finish; console follows" >&2
    cat "$console" >&2
    exit 1
fi
cat <<'HEAD'
# Benchmarks

Instruction counts of Capvisor's trap paths on QEMU Integrator/CP
(Cortex-A15), measured by the bench guest (`tests/guests/src/bin/bench.rs`)
with the cycle counter PMCCNTR under `-icount shift=0`, where it advances
one per instruction executed in the guest and in Hyp mode. The figures are
exact and reproducible; each is the minimum and the mean over 100 runs,
less the cost of the two counter reads (the baseline row).

Made by:

```sh
make bench
```

HEAD
sed -n 's/^bench: \(|.*\)$/\1/p' "$console" | tr -d '\r'
cat <<'TAIL'

The VM switch row: the bench VM executes WFI while a second VM
('bench-peer') waits in a loop of WFI; the round trip (two switches, each
with the exit, saving and restoring CP15 and VFP/NEON state, the stage-2
switch by VMID without TLB invalidation, and the entry) less the peer's two
loop instructions, halved.

Targets from the guest-VM issue: null hypercall <= 80, MMIO read <= 250,
VM switch <= 1,500.
TAIL
