#!/usr/bin/env python3
# SPDX-License-Identifier: MIT OR Apache-2.0
"""Wall-clock runs of Linux for `make bench`: the same kernel and initramfs
(booted with `capvisor-wall`, see tools/linux-images.sh) natively on QEMU
virt and under Capvisor on each board, in alternating rounds, timed on the
host from the console's markers.

    tools/wall-bench.py --runs N --out FILE NAME=COMMAND...

Each NAME=COMMAND is one configuration: a shell command that starts QEMU
with its console on stdout; the first configuration is the reference the
others are divided by (native). Every round runs each configuration once,
in turn, so that a slower or busier stretch of the host weighs on all of
them alike; the figures are the medians over the rounds. Phases, in
seconds of host time from QEMU's start:

    boot   to the initramfs's first line ("capvisor-linux: initramfs up")
    loop   a 200,000-iteration busybox shell loop
    dd     dd if=/dev/zero bs=1M count=64 | md5sum (checked)
    total  to QEMU's exit

FILE gets a Markdown table of medians and ratios, and, for each
configuration under Capvisor, the VM's exits by reason from the status
lines Capvisor prints when the VM powers off. Exits non-zero, with the
console transcript, when a run fails or its checksum is wrong.
"""

import argparse
import re
import statistics
import subprocess
import sys
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


def run_once(name, command):
    """Runs one configuration; returns (phase seconds, exit line or None)."""
    start = time.monotonic()
    process = subprocess.Popen(
        command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT)
    seen = {}
    transcript = []
    exits = None
    for raw in process.stdout:
        now = time.monotonic()
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        transcript.append(line)
        for key, marker in MARKERS.items():
            if key not in seen and marker in line:
                seen[key] = now - start
        match = re.search(r"VM 1 'linux':.*?; (exits .*)$", line)
        if match:
            exits = match.group(1)
        if now - start > TIMEOUT:
            process.kill()
            break
    status = process.wait()
    end = time.monotonic() - start
    checksum_ok = any(ZEROS_64_MIB_MD5 in line for line in transcript)
    if len(seen) != len(MARKERS) or not checksum_ok or status not in (0, 1):
        # QEMU virt exits 0 at poweroff; Capvisor exits 0 with the VM
        # powered off (no status reported: not a failure).
        sys.stderr.write(
            f"wall-bench: {name} failed (status {status}, markers {sorted(seen)}, "
            f"checksum {'right' if checksum_ok else 'missing or wrong'}); "
            "console transcript follows\n")
        sys.stderr.write("\n".join(transcript[-200:]) + "\n")
        sys.exit(1)
    return {
        "boot": seen["up"],
        "loop": seen["loop done"] - seen["loop start"],
        "dd": seen["dd done"] - seen["dd start"],
        "total": end,
    }, exits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", required=True)
    parser.add_argument("configs", nargs="+", metavar="NAME=COMMAND")
    args = parser.parse_args()
    configs = []
    for text in args.configs:
        name, sep, command = text.partition("=")
        if not sep or not name or not command:
            parser.error(f"{text!r} is not NAME=COMMAND")
        configs.append((name, command))
    samples = {name: {phase: [] for phase in PHASES} for name, _ in configs}
    exits = {}
    for round_number in range(1, args.runs + 1):
        for name, command in configs:
            phases, exit_line = run_once(name, command)
            for phase in PHASES:
                samples[name][phase].append(phases[phase])
            if exit_line:
                exits[name] = exit_line
            print(f"wall-bench: round {round_number} {name}: " + ", ".join(
                f"{phase} {phases[phase]:.3f} s" for phase in PHASES), flush=True)
    reference = configs[0][0]
    medians = {
        name: {phase: statistics.median(samples[name][phase]) for phase in PHASES}
        for name, _ in configs
    }
    lines = [
        "| configuration | " + " | ".join(f"{phase} s | ratio" for phase in PHASES) + " |",
        "|---|" + "---:|---:|" * len(PHASES),
    ]
    for name, _ in configs:
        cells = []
        for phase in PHASES:
            value = medians[name][phase]
            cells.append(f"{value:.3f} | {value / medians[reference][phase]:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"Medians of {args.runs} alternating rounds; ratios to {reference}.")
    for name, _ in configs:
        if name in exits:
            lines.append("")
            lines.append(f"VM exits in one run under {name}: {exits[name]}.")
    with open(args.out, "w") as out:
        out.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
