#!/usr/bin/env bash
# Turns the console of a `bench` run (argument 1, under -icount) and of the
# Linux boots under Capvisor (argument 2) and natively (argument 3), all
# under -icount, into BENCHMARKS.md on stdout.
set -euo pipefail
console="$1"
linux_capvisor="$2"
linux_native="$3"
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
# VM switch under preemption: both VMs spun reading PMCCNTR, the CPU's one
# counter, and printed each gap in their readings as "bench: main|peer gap
# BEFORE AFTER". A main gap brackets a peer turn: the switch into the peer
# is the peer's first reading after its own gap less the main VM's last
# reading, the switch back the main VM's next reading less the peer's last
# reading. One loop iteration (9 instructions) is subtracted from each.
tr -d '\r' < "$console" | sed -n 's/^\(\[bench-peer\] \)\{0,1\}bench: \(main\|peer\) gap \([0-9]*\) \([0-9]*\)$/\2 \3 \4/p' | awk '
    $1 == "main" { ms[++m] = $2; me[m] = $3 }
    $1 == "peer" { ps[++p] = $2; pe[p] = $3 }
    END {
        n = 0; total = 0; min = -1
        for (i = 1; i <= m; i++) {
            for (j = 1; j <= p; j++) {
                if (pe[j] > ms[i] && pe[j] < me[i]) { d = pe[j] - ms[i] - 9; n++; total += d; if (min < 0 || d < min) min = d }
                if (ps[j] > ms[i] && ps[j] < me[i]) { d = me[i] - ps[j] - 9; n++; total += d; if (min < 0 || d < min) min = d }
            }
        }
        if (n == 0) { print "bench-report: no VM switch under preemption measured" > "/dev/stderr"; exit 1 }
        printf "| VM switch under preemption (slice end to the other VM) | %d | %d | %d |\n", min, total / n, n
    }'
# Linux: the kernel's own timestamp of "Run /init" (its counter, which
# under -icount shift=0 advances 1 ns per instruction executed).
init_time() {
    tr -d '\r' < "$1" | sed -n 's/^\[ *\([0-9]*\.[0-9]*\)\] Run \/init as init process$/\1/p' | head -n 1
}
capvisor_init=$(init_time "$linux_capvisor")
native_init=$(init_time "$linux_native")
if [ -z "$capvisor_init" ] || [ -z "$native_init" ]; then
    echo "bench-report: no 'Run /init' line in the Linux consoles" >&2
    exit 1
fi
exits=$(tr -d '\r' < "$linux_capvisor" | sed -n "s/^capvisor:   VM 1 'linux': [^;]*; exits \(.*\)$/\1/p")
cat <<LINUX

## Linux boot

Debian's armhf armmp kernel with the busybox initramfs, booted to its
\`Run /init\` line under Capvisor (Integrator/CP) and natively on QEMU
\`-M virt -cpu cortex-a15\` with the device tree Capvisor writes
(\`capvisor-dtb\`), 256 MiB, both under \`-icount shift=0\`. The times are
the kernel's own timestamps; under \`-icount\` its counter advances by one
nanosecond per instruction executed (guest and hypervisor), so they are
instruction counts (including time the CPU spent waiting for interrupts).

| boot to \`Run /init\` | seconds (= 10^9 instructions) |
|---|---:|
| native (QEMU virt) | $native_init |
| under Capvisor | $capvisor_init |
| ratio | $(awk "BEGIN { printf \"%.3f\", $capvisor_init / $native_init }") |

VM exits during the whole run (boot, then \`poweroff -f\`): $exits.
LINUX
cat <<'TAIL'

The VM switch row: the bench VM calls YIELD while a second VM
('bench-peer') yields in a loop; the round trip (two switches, each with a
hypercall exit, saving and restoring the banked registers, CP15 and
VFP/NEON state, the stage-2 switch by VMID without TLB invalidation, and
the entry) less the peer's three loop instructions, halved.

GIC acknowledge + EOI: two trapped and emulated accesses to the virtual
GIC's CPU interface, for an SGI the guest sent itself. Virtual interrupt
delivery: the guest spins reading PMCCNTR with its virtual timer armed;
from its last reading to the first instruction of its IRQ vector, the
hypervisor's alarm interrupt is taken to Hyp, serviced, the timer's line
raised in the virtual GIC, HCR.VI set and the guest entered (the mean is
higher than the minimum when the alarm, which has 1 us resolution, fires
while the hypervisor is already on its way into the guest). Scheduling
tick: the gap in a lone VM's run when its 10 ms slice ends. VM switch under
preemption: from one VM's last instruction before its slice ended to the
other VM's first, seen from both sides (see `tools/bench-report.sh`).

Targets from the guest-VM issue: null hypercall <= 80, MMIO read <= 250,
VM switch <= 1,500. The null hypercall and the MMIO read miss theirs. Of a
null hypercall's instructions, about 27 are the exception entry, the
register save and the return to the guest; the rest is the kernel's exit
loop in Rust: decoding the syndrome, counting the exit, looking at the
guest's virtual timer (it must be checked at every exit, as the board does
not wire its interrupt), keeping the alarm and the virtual IRQ line up to
date, and routing the call by its SMCCC owner (`hyp::dispatch::Routes`).
An MMIO read also decodes the access, finds the device by its cached
window (64-bit guest-physical arithmetic), calls it through its trait
object and re-evaluates the virtual GIC's output afterwards, as a device
access may change it.
TAIL
