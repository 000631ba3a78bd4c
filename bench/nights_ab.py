#!/usr/bin/env python3
"""Builds against each other on nights with the summaries table (issue 25), alternating.

Usage: python3 bench/nights_ab.py BIN [BIN ...]

For each `procforest` binary: the previous night's summaries table written once with it
(bench/incremental.py's table of $PROCFOREST_BENCH_EVENTS events, default 10 M, `--as-of
2026-11-26 --summaries`), then for PROCFOREST_BENCH_ROUNDS rounds (default 3), every
binary in turn: a full run (`--as-of 2026-11-27`, unless PROCFOREST_BENCH_NIGHTS_ONLY=1)
and a night on a fresh copy of its own night-before table. Prints each run's wall time,
its process CPU (user + sys) and the night / full ratio per round, and stops unless every
run gives the same anomalies (JSON lines without the run id). Preset: $PROCFOREST_PRESET
(default soc).
"""

import os
import shutil
import sys

from run import measured  # wall, CPU and anomalies of one run

BENCH = os.environ.get("PROCFOREST_BENCH_DIR", "/tmp/procforest-bench")
EVENTS = int(os.environ.get("PROCFOREST_BENCH_EVENTS", "10000000"))
ROUNDS = int(os.environ.get("PROCFOREST_BENCH_ROUNDS", "3"))
PRESET = os.environ.get("PROCFOREST_PRESET", "soc")
NIGHTS_ONLY = os.environ.get("PROCFOREST_BENCH_NIGHTS_ONLY") == "1"
WORK = f"{BENCH}/nights-ab"


def run(binary, as_of, out, summaries=None):
    """Wall and CPU seconds of one run, and its anomalies without the run id."""
    args = [binary, "run", "--table", f"{BENCH}/events-{EVENTS}", "--as-of", as_of,
            "--preset", PRESET, "--quiet", "--json", out]
    if summaries:
        args += ["--summaries", summaries]
    return measured(args, out)


def main():
    binaries = sys.argv[1:]
    if not binaries or not os.path.exists(f"{BENCH}/events-{EVENTS}"):
        sys.exit(__doc__ + f"\n(the table comes from bench/incremental.py {EVENTS})")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    before = {}
    for i, binary in enumerate(binaries):
        before[binary] = f"{WORK}/night-before-{i}"
        run(binary, "2026-11-26", f"{WORK}/before.json", before[binary])
    seen = None
    for _ in range(ROUNDS):
        for i, binary in enumerate(binaries):
            line = f"{i} {binary}:"
            full = None
            if not NIGHTS_ONLY:
                full = run(binary, "2026-11-27", f"{WORK}/full.json")
                line += f" full {full[0]:.2f} s (cpu {full[1]:.2f})"
            copy = f"{WORK}/night"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(before[binary], copy)
            night = run(binary, "2026-11-27", f"{WORK}/night.json", copy)
            line += f" night {night[0]:.2f} s (cpu {night[1]:.2f})"
            if full:
                line += f" night/full {night[0] / full[0]:.3f}"
            print(line, flush=True)
            for result in filter(None, [full, night]):
                seen = seen if seen is not None else result[2]
                if result[2] != seen:
                    sys.exit(f"{binary} gave other anomalies")
    print(f"every run gave the same {len(seen)} anomalies")


if __name__ == "__main__":
    main()
