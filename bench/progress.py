#!/usr/bin/env python3
"""Progress on a long cluster run (issue 26): the 60 M-event table (generated once, as
run.py does) on a loopback cluster of a scheduler and three executors, with the SOC preset
(its evidence jobs make a run of minutes), three ways in one go: with a terminal (under `script`, so stderr is a real pseudo-terminal and
`--progress auto` draws the status line), with JSON logs (`--progress auto` then logs a
progress line every --progress-interval seconds, as in a pod), and with `--progress off`
for the cost. Prints the terminal's finished-phase lines and a sample of its status lines,
the JSON progress lines, and the wall times.

    python3 bench/progress.py [EVENTS]   # default 60000000
"""
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import run as bench

EVENTS = int(sys.argv[1]) if len(sys.argv) > 1 else 60_000_000


def procforest(args):
    return [str(bench.BIN), "run", "--table", str(table), "--as-of", bench.END_DATE, "--quiet",
            "--preset", "soc", "--partitions", "3", "--scheduler", f"df://127.0.0.1:{cluster.port}", *args]


def timed_run(command, stderr_file):
    started = time.monotonic()
    with open(stderr_file, "wb") as err:
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=err, check=True)
    return time.monotonic() - started


bench.fresh_copies()
table = bench.table(EVENTS)
cluster = bench.Cluster(executors=3)
try:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # `script` gives the run a pseudo-terminal; its own output file holds what was drawn.
        shown = tmp / "terminal.txt"
        command = " ".join(f"'{a}'" for a in procforest([]))
        terminal = timed_run(["script", "-qfc", command, str(shown)], tmp / "script.err")
        drawn = shown.read_bytes().decode(errors="replace")  # keeps the \r
        # Each finished phase ends its line; the status line is redrawn in place (\r, erase).
        lines = [line.split("\r\x1b[2K")[-1].strip() for line in drawn.split("\n")]
        finished = [line for line in lines if re.fullmatch(r"procforest: \w+ [0-9.]+ s", line)]
        status = [p for p in re.split(r"\r\x1b\[2K|\n", drawn)
                  if p.startswith("procforest: ") and "job" in p]
        json_err = tmp / "json.err"
        logged = timed_run(procforest(["--log-format", "json", "--progress-interval", "5"]), json_err)
        progress = [json.loads(l)["fields"] for l in json_err.read_text().splitlines()
                    if '"procforest::progress"' in l]
        off = timed_run(procforest(["--progress", "off"]), tmp / "off.err")
finally:
    cluster.close()

print(f"{EVENTS} events, scheduler and three executors on loopback\n")
print("terminal, finished phases:")
for line in finished:
    print("   ", line.strip())
print(f"terminal, {len(status)} status lines with jobs; every 10th:")
for line in status[::10]:
    print("   ", line.strip())
print(f"\nJSON logs, {len(progress)} progress lines (every 5 s):")
for p in progress:
    print("   ", json.dumps(p, sort_keys=True))
print(f"\nwall: terminal {terminal:.2f} s, JSON log lines {logged:.2f} s, progress off {off:.2f} s")
