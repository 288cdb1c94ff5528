#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Wall-clock runs of Linux for `make bench`: the same kernel and initramfs
(booted with `capvisor-wall`, see tools/linux-images.sh) natively on QEMU
virt and under Capvisor on each board, timed on the host from the
console's markers.

    tools/wall-bench.py --runs N [--alternate] --out FILE NAME=COMMAND...

Each NAME=COMMAND is one configuration: a shell command that starts QEMU
with its console on stdout; the first is the reference (native) the
others are compared with. The host's speed drifts by tens of percent from
one minute to the next on a shared machine, so each configuration runs
side by side with the reference, at the same time, each QEMU pinned to
its own CPU (swapped every round): both see the same host. A round runs
every configuration once that way; the ratio of a phase is the median
over the rounds of the pair's ratio. Phases, in seconds of host time from
QEMU's start:

    boot   to the initramfs's first line ("capvisor-linux: initramfs up")
    loop   a 200,000-iteration busybox shell loop
    dd     dd if=/dev/zero bs=1M count=64 | md5sum (checked)
    total  to QEMU's exit

Each phase is also measured in CPU time of the QEMU process (user and
system, all its threads, from /proc), which leaves out time the machine
gave to others.

FILE gets Markdown tables of medians and ratios, and, for each
configuration under Capvisor, the VM's exits by reason from the status
lines Capvisor prints when the VM powers off. Exits non-zero, with the
console transcript, when a run fails or its checksum is wrong.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import threading
import time

MARKERS = {
    "up": "capvisor-linux: initramfs up",
    "loop start": "capvisor-wall: loop start",
    "loop done": "capvisor-wall: loop done 200000",
    "dd start": "capvisor-wall: dd start",
    "dd done": "capvisor-wall: dd done",
}
ZEROS_64_MIB_MD5 = "7f614da9329cd3aebf59b91aadc30bf0"
PHASES = ["boot", "loop", "dd", "total"]
TIMEOUT = 600


TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User + system time of process `pid` (all its threads) so far."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # Fields 14 and 15 of stat (utime, stime), counted after the name.
    return (int(fields[11]) + int(fields[12])) / TICK


def run_once(name, command, cpu_number):
    """Runs one configuration on CPU `cpu_number` (None: anywhere); returns
    (wall seconds, CPU seconds, exit line or None) per phase."""
    start = time.monotonic()
    # exec: the shell becomes QEMU, so the PID is QEMU's.
    pin = f"taskset -c {cpu_number} " if cpu_number is not None else ""
    process = subprocess.Popen(
        f"exec {pin}{command}", shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    seen = {}
    cpu = {}
    transcript = []
    exits = None
    for raw in process.stdout:
        now = time.monotonic()
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        transcript.append(line)
        for key, marker in MARKERS.items():
            if key not in seen and marker in line:
                seen[key] = now - start
                cpu[key] = cpu_seconds(process.pid)
        match = re.search(r"VM 1 'linux':.*?; (exits .*)$", line)
        if match:
            exits = match.group(1)
        if now - start > TIMEOUT:
            process.kill()
            break
    _, wait_status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    status = process.returncode
    end = time.monotonic() - start
    cpu["end"] = usage.ru_utime + usage.ru_stime
    checksum_ok = any(ZEROS_64_MIB_MD5 in line for line in transcript)
    if len(seen) != len(MARKERS) or not checksum_ok or status not in (0, 1) \
            or None in cpu.values():
        # QEMU virt exits 0 at poweroff; Capvisor exits 0 with the VM
        # powered off (no status reported: not a failure).
        sys.stderr.write(
            f"wall-bench: {name} failed (status {status}, markers {sorted(seen)}, "
            f"checksum {'right' if checksum_ok else 'missing or wrong'}); "
            "console transcript follows\n")
        sys.stderr.write("\n".join(transcript[-200:]) + "\n")
        os._exit(1)
    wall = {
        "boot": seen["up"],
        "loop": seen["loop done"] - seen["loop start"],
        "dd": seen["dd done"] - seen["dd start"],
        "total": end,
    }
    cpu_time = {
        "boot": cpu["up"],
        "loop": cpu["loop done"] - cpu["loop start"],
        "dd": cpu["dd done"] - cpu["dd start"],
        "total": cpu["end"],
    }
    return wall, cpu_time, exits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--alternate", action="store_true",
        help="run the configurations one at a time, alternating, each with every host "
             "CPU (for guests with several CPUs: pinned to one host CPU, their vCPUs' "
             "threads would measure the host's scheduler)")
    parser.add_argument("--out", required=True)
    parser.add_argument("configs", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    configs = []
    for text in args.configs:
        name, sep, command = text.partition("=")
        if not sep or not name or not command:
            parser.error(f"{text!r} is not NAME=COMMAND")
        configs.append((name, command))
    reference, reference_command = configs[0]
    paired = len(os.sched_getaffinity(0)) >= 2 and not args.alternate
    # samples[kind][name][phase]: seconds; ratios[kind][name][phase]: the
    # ratio to the reference run beside it.
    samples = {kind: {name: {phase: [] for phase in PHASES} for name, _ in configs}
               for kind in ("wall", "cpu")}
    ratios = {kind: {name: {phase: [] for phase in PHASES} for name, _ in configs}
              for kind in ("wall", "cpu")}
    exits = {}
    for round_number in range(1, args.runs + 1):
        for name, command in configs[1:]:
            cpus = (round_number % 2, 1 - round_number % 2) if paired else (None, None)
            results = {}
            jobs = [(reference, reference_command, cpus[0]), (name, command, cpus[1])]
            if paired:
                threads = [
                    threading.Thread(target=lambda job=job: results.__setitem__(
                        job[0], run_once(*job)))
                    for job in jobs
                ]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
            else:
                for job in jobs:
                    results[job[0]] = run_once(*job)
            if len(results) != 2:
                sys.exit(1)
            for who in (reference, name):
                wall, cpu, exit_line = results[who]
                for phase in PHASES:
                    samples["wall"][who][phase].append(wall[phase])
                    samples["cpu"][who][phase].append(cpu[phase])
                if exit_line:
                    exits[who] = exit_line
            for kind, index in (("wall", 0), ("cpu", 1)):
                for phase in PHASES:
                    ratios[kind][name][phase].append(
                        results[name][index][phase] / results[reference][index][phase])
            wall, cpu, _ = results[name]
            print(f"wall-bench: round {round_number} {name}: " + ", ".join(
                f"{phase} {wall[phase]:.3f} s (x{wall[phase] / results[reference][0][phase]:.3f})"
                for phase in PHASES), flush=True)
    lines = []
    for kind, title in (("wall", "wall clock"), ("cpu", "QEMU's CPU time")):
        lines += [
            f"| {title} | " + " | ".join(f"{phase} s | ratio" for phase in PHASES) + " |",
            "|---|" + "---:|---:|" * len(PHASES),
        ]
        for name, _ in configs:
            cells = []
            for phase in PHASES:
                value = statistics.median(samples[kind][name][phase])
                ratio = 1.0 if name == reference else statistics.median(ratios[kind][name][phase])
                cells.append(f"{value:.3f} | {ratio:.3f}")
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        lines.append("")
    pairing = ("each run side by side with a native run, on the other CPU"
               if paired else "one at a time, alternating, each with every host CPU")
    lines.append(f"Medians of {args.runs} rounds ({pairing}); each ratio is the median of the "
                 f"ratios to the {reference} run {'beside it' if paired else 'of its round'}.")
    for name, _ in configs:
        if name in exits:
            lines.append("")
            lines.append(f"VM exits in one run under {name}: {exits[name]}.")
    with open(args.out, "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
