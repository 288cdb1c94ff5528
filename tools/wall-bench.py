#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Wall-clock runs of Linux for `make bench`: the same kernel and initramfs
(booted with `capvisor-wall`, see tools/linux-images.sh) natively on QEMU
virt and under Capvisor on each board, timed on the host from the
console's markers.

    tools/wall-bench.py --runs N [--alternate] [--disk] --out FILE NAME=COMMAND...

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

With --disk, every configuration's VM has a disk (/dev/vda, 128 MiB) and
four more phases time dd on it with O_DIRECT (every block a request to the
disk), 64 MiB of pseudo-random data each:

    write 1M  dd of=/dev/vda bs=1M count=64 oflag=direct
    read 1M   dd if=/dev/vda bs=1M count=64 iflag=direct
    write 4K  the same at bs=4k count=16384, in the disk's second 64 MiB
    read 4K   and read back from there

The initramfs prints the source's md5 and each read's; both reads must
give the source's (checked).

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
DISK_MARKERS = {
    f"{phase} {edge}": f"capvisor-wall: disk {phase} {edge}"
    for phase in ("write 1M", "read 1M", "write 4K", "read 4K")
    for edge in ("start", "done")
}
PHASES = ["boot", "loop", "dd", "total"]
DISK_PHASES = ["write 1M", "read 1M", "write 4K", "read 4K"]
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


def disk_checksums(transcript):
    """Whether the disk phases' reads gave the source's md5: (ok, why)."""
    sums = {}
    for line in transcript:
        match = re.search(r"capvisor-wall: disk (source|read 1M|read 4K) md5 ([0-9a-f]{32})", line)
        if match:
            sums[match.group(1)] = match.group(2)
    if len(sums) != 3:
        return False, f"disk checksums missing (seen: {sorted(sums)})"
    if sums["source"] == ZEROS_64_MIB_MD5:
        return False, "the disk source is zeros"
    if sums["read 1M"] != sums["source"] or sums["read 4K"] != sums["source"]:
        return False, f"disk checksums differ: {sums}"
    return True, "disk checksums right"


def run_once(name, command, cpu_number, disk):
    """Runs one configuration on CPU `cpu_number` (None: anywhere); returns
    (wall seconds, CPU seconds, exit line or None) per phase. `disk`: the
    disk phases are expected."""
    markers = dict(MARKERS, **DISK_MARKERS) if disk else MARKERS
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
        for key, marker in markers.items():
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
    disk_ok, disk_why = disk_checksums(transcript) if disk else (True, "no disk")
    if len(seen) != len(markers) or not checksum_ok or not disk_ok \
            or status not in (0, 1) or None in cpu.values():
        # QEMU virt exits 0 at poweroff; Capvisor exits 0 with the VM
        # powered off (no status reported: not a failure).
        sys.stderr.write(
            f"wall-bench: {name} failed (status {status}, markers {sorted(seen)}, "
            f"checksum {'right' if checksum_ok else 'missing or wrong'}, {disk_why}); "
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
    if disk:
        for phase in DISK_PHASES:
            wall[phase] = seen[f"{phase} done"] - seen[f"{phase} start"]
            cpu_time[phase] = cpu[f"{phase} done"] - cpu[f"{phase} start"]
    return wall, cpu_time, exits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--alternate", action="store_true",
        help="run the configurations one at a time, alternating, each with every host "
             "CPU (for guests with several CPUs: pinned to one host CPU, their vCPUs' "
             "threads would measure the host's scheduler)")
    parser.add_argument(
        "--disk", action="store_true",
        help="every configuration's VM has a disk: time the disk phases too")
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
    phases = PHASES[:3] + (DISK_PHASES if args.disk else []) + PHASES[3:]
    paired = len(os.sched_getaffinity(0)) >= 2 and not args.alternate
    # samples[kind][name][phase]: seconds; ratios[kind][name][phase]: the
    # ratio to the reference run beside it.
    samples = {kind: {name: {phase: [] for phase in phases} for name, _ in configs}
               for kind in ("wall", "cpu")}
    ratios = {kind: {name: {phase: [] for phase in phases} for name, _ in configs}
              for kind in ("wall", "cpu")}
    exits = {}
    for round_number in range(1, args.runs + 1):
        for name, command in configs[1:]:
            cpus = (round_number % 2, 1 - round_number % 2) if paired else (None, None)
            results = {}
            jobs = [(reference, reference_command, cpus[0], args.disk),
                    (name, command, cpus[1], args.disk)]
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
                for phase in phases:
                    samples["wall"][who][phase].append(wall[phase])
                    samples["cpu"][who][phase].append(cpu[phase])
                if exit_line:
                    exits[who] = exit_line
            for kind, index in (("wall", 0), ("cpu", 1)):
                for phase in phases:
                    ratios[kind][name][phase].append(
                        results[name][index][phase] / results[reference][index][phase])
            wall, cpu, _ = results[name]
            print(f"wall-bench: round {round_number} {name}: " + ", ".join(
                f"{phase} {wall[phase]:.3f} s (x{wall[phase] / results[reference][0][phase]:.3f})"
                for phase in phases), flush=True)
    lines = []
    # One table for the boot, the loop, dd and the total; with --disk a
    # second one for the disk phases, with their throughput.
    groups = [(PHASES, False)] + ([(DISK_PHASES, True)] if args.disk else [])
    for group, throughput in groups:
        for kind, title in (("wall", "wall clock"), ("cpu", "QEMU's CPU time")):
            if throughput:
                title = f"disk, 64 MiB, {title}"
            extra = " MiB/s |" if throughput and kind == "wall" else ""
            lines += [
                f"| {title} | " + " | ".join(
                    f"{phase} s |{extra} ratio" for phase in group) + " |",
                "|---|" + ("---:|" * (3 if extra else 2)) * len(group),
            ]
            for name, _ in configs:
                cells = []
                for phase in group:
                    value = statistics.median(samples[kind][name][phase])
                    ratio = (1.0 if name == reference
                             else statistics.median(ratios[kind][name][phase]))
                    rate = f" {64 / value:.1f} |" if extra else ""
                    cells.append(f"{value:.3f} |{rate} {ratio:.3f}")
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
