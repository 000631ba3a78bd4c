#!/usr/bin/env python3
"""A nightly run with the summaries table against a full run (issue 25).

Usage: python3 bench/incremental.py EVENTS [PRESET ...]

Generates (once) a 30-day table of EVENTS events like bench/run.py's (hosts = EVENTS /
20,000, seed 1, ending 2026-11-27), then for each preset writes the previous night's
summaries table once (`--as-of 2026-11-26 --summaries`: 29 days) and alternates, for
PROCFOREST_BENCH_ROUNDS rounds (default 5):

- full: `procforest run --as-of 2026-11-27` (every day counted from the events);
- nightly: the same with `--summaries` on a fresh copy of the previous night's table
  (29 days read from it, the new day counted).

It stops unless both give the same anomalies (JSON lines without the run id) and model,
and prints wall times (median, fastest), their ratio, the nightly run's phases, the bytes
each reads (the table's data files, or the new day's and the summaries table's), and with
PROCFOREST_BENCH_EXECUTORS=N the peak RSS of each of the N executors of a loopback cluster
(run.py's, one slot each) the runs then go to (`--scheduler`, N partitions).
Binaries: $PROCFOREST_BIN (default ~/.cache/procforest/target/release/procforest); the
cluster's are run.py's.
"""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

BENCH = os.environ.get("PROCFOREST_BENCH_DIR", "/tmp/procforest-bench")
BIN = os.environ.get(
    "PROCFOREST_BIN",
    os.path.expanduser("~/.cache/procforest/target/release/procforest"),
)
ROUNDS = int(os.environ.get("PROCFOREST_BENCH_ROUNDS", "5"))
EXECUTORS = int(os.environ.get("PROCFOREST_BENCH_EXECUTORS", "0"))


def size(path, under=""):
    """Bytes of the files below `path` (only in folders whose path contains `under`),
    the Delta log excluded."""
    total = 0
    for root, _, files in os.walk(path):
        if "_delta_log" in root or under not in root:
            continue
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    return total


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    return None


def table(events):
    path = f"{BENCH}/events-{events}"
    if not os.path.exists(path):
        subprocess.run(
            [BIN, "generate", "--out", path, "--events", str(events), "--days", "30",
             "--hosts", str(max(events // 20000, 10)), "--seed", "1",
             "--end-date", "2026-11-27", "--attack-rate", "0.01"],
            check=True, stdout=subprocess.DEVNULL)
    return path


def run(path, preset, as_of, work, extra):
    out, manifest = f"{work}/anomalies.json", f"{work}/manifest.json"
    args = [BIN, "run", "--table", path, "--as-of", as_of, "--preset", preset, "--quiet",
            "--json", out, "--manifest", manifest] + extra
    start = time.monotonic()
    subprocess.run(args, check=True)
    wall = time.monotonic() - start
    with open(out) as f:
        anomalies = [{k: v for k, v in json.loads(l).items() if k != "run_id"} for l in f]
    with open(manifest) as f:
        manifest = json.load(f)
    return wall, anomalies, manifest


def main():
    events = int(sys.argv[1])
    presets = sys.argv[2:] or ["notebook"]
    path = table(events)
    work = f"{BENCH}/incremental-work"
    cluster, on_cluster = None, []
    if EXECUTORS:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        import run as bench_run
        cluster = bench_run.Cluster(executors=EXECUTORS)
        on_cluster = ["--scheduler", f"df://127.0.0.1:{cluster.port}",
                      "--partitions", str(EXECUTORS)]
    try:
        for preset in presets:
            compare(events, path, preset, work, on_cluster)
    finally:
        if cluster:
            for i, p in enumerate(cluster.procs[1:]):
                print(f"executor {i}: peak RSS {peak_rss_mb(p.pid)} MB")
            cluster.close()


def compare(events, path, preset, work, on_cluster):
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    night_before = f"{work}/summaries-night-before"
    run(path, preset, "2026-11-26", work, ["--summaries", night_before] + on_cluster)
    times = {"full": [], "nightly": []}
    for _ in range(ROUNDS):
        full_wall, full, full_manifest = run(path, preset, "2026-11-27", work, on_cluster)
        store = f"{work}/summaries"
        shutil.rmtree(store, ignore_errors=True)
        shutil.copytree(night_before, store)
        wall, nightly, manifest = run(path, preset, "2026-11-27", work,
                                      ["--summaries", store] + on_cluster)
        if nightly != full or manifest["model"]["hash"] != full_manifest["model"]["hash"]:
            sys.exit(f"{preset}: the nightly run's anomalies differ from the full run's")
        times["full"].append(full_wall)
        times["nightly"].append(wall)
    med = {k: statistics.median(v) for k, v in times.items()}
    low = {k: min(v) for k, v in times.items()}
    print(f"{events} events, {preset}: {len(full)} anomalies in both")
    for k in times:
        print(f"  {k}: median {med[k]:.2f} s, fastest {low[k]:.2f} s "
              f"({', '.join(f'{t:.2f}' for t in times[k])})")
    print(f"  nightly / full: {med['nightly'] / med['full']:.2f} (medians), "
          f"{low['nightly'] / low['full']:.2f} (fastest)")
    print(f"  full phases: {json.dumps({k: round(v, 3) for k, v in full_manifest['phases'].items()})}")
    print(f"  nightly phases: {json.dumps({k: round(v, 3) for k, v in manifest['phases'].items()})}")
    print(f"  summaries table: {json.dumps(manifest['summaries_table'])}")
    print(f"  bytes read: full {size(path) / 1e6:.0f} MB; nightly "
          f"{size(path, 'EventDate=2026-11-27') / 1e6:.0f} MB of the new day and "
          f"{size(store) / 1e6:.1f} MB of summaries (the table after the night)")


if __name__ == "__main__":
    main()
