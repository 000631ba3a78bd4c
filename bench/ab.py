#!/usr/bin/env python3
"""Is a build slower than another? The job of two builds, alternating, on the same tables.

For each table size: the tables bench/run.py generates (reused from
$PROCFOREST_BENCH_DIR, made with the NEW build when missing), then ROUNDS rounds of
`procforest run --table T --as-of 2026-11-27 --quiet --partitions 2` with each build's
binary in turn (fresh stripped copies of both, so that neither starts from a warmer page
cache: see BENCHMARKS.md), and prints each build's median and fastest wall time and their
ratio. Wall time is taken around the whole process, as a user waits for it.

    python3 bench/ab.py OLD_BIN_DIR NEW_BIN_DIR [EVENTS ...]   # default: 1000000 5000000 20000000

ROUNDS is $PROCFOREST_BENCH_ROUNDS (default 15 up to 5 M events, else 7).
"""
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

WORK = Path(os.environ.get("PROCFOREST_BENCH_DIR", "/tmp/procforest-bench"))
END_DATE = "2026-11-27"


def fresh_copy(binary, name):
    """A stripped copy of `binary` written now (see bench/run.py's fresh_copies)."""
    out = WORK / "ab-bin" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        subprocess.run(["strip", "-o", str(out), str(binary)], check=True)
    except (OSError, subprocess.CalledProcessError):
        shutil.copy2(binary, out)
    return out


def table(binary, events):
    path = WORK / f"events-{events}"
    if not (path / "_delta_log").exists():
        subprocess.run([binary, "generate", "--out", path, "--events", str(events),
                        "--days", "30", "--hosts", str(max(50, events // 20000)),
                        "--seed", "1", "--end-date", END_DATE, "--attack-rate", "0.01"],
                       check=True, stdout=subprocess.DEVNULL)
    return path


def wall(binary, path):
    started = time.perf_counter()
    subprocess.run([binary, "run", "--table", path, "--as-of", END_DATE, "--quiet",
                    "--partitions", "2"], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, env={**os.environ, "PROCFOREST_LOG": "warn"})
    return time.perf_counter() - started


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old = fresh_copy(Path(sys.argv[1]) / "procforest", "old")
    new = fresh_copy(Path(sys.argv[2]) / "procforest", "new")
    sizes = [int(a) for a in sys.argv[3:]] or [1_000_000, 5_000_000, 20_000_000]
    print("| events | old median | new median | **new / old (medians)** | old fastest "
          "| new fastest | new / old (fastest) | rounds |")
    print("|---|---|---|---|---|---|---|---|")
    for events in sizes:
        path = table(new, events)
        rounds = int(os.environ.get("PROCFOREST_BENCH_ROUNDS", 15 if events <= 5_000_000 else 7))
        wall(old, path), wall(new, path)  # warm both binaries and the table's files
        times = {"old": [], "new": []}
        for _ in range(rounds):
            times["old"].append(wall(old, path))
            times["new"].append(wall(new, path))
        mo, mn = (statistics.median(times[k]) for k in ("old", "new"))
        fo, fn = (min(times[k]) for k in ("old", "new"))
        print(f"| {events:,} | {mo:.3f} s | {mn:.3f} s | **{mn / mo:.3f}×** | {fo:.3f} s "
              f"| {fn:.3f} s | {fn / fo:.3f}× | {rounds} |", flush=True)


if __name__ == "__main__":
    main()
