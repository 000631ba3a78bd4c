#!/usr/bin/env python3
"""procforest on tables laid out as users' are (issue 28).

For each size: the same generated events (seed 1, 30 days, EVENTS / 20000 hosts, as
bench/run.py generates them) in several layouts —

  day         one file per day, partitioned by EventDate (bench/run.py's table)
  100/day     a hundred files per day (streaming ingestion)
  unpart      no partition column (liquid clustering), one file per day
  unpart-100  no partition column, a hundred files per day
  dv          one file per day, 2 % of the events ingested twice and deleted again by
              deletion vectors (what a dedupe MERGE leaves)

— then the run (notebook preset) on each, alternating, PROCFOREST_BENCH_ROUNDS times
(default 5); it prints a Markdown table of median and fastest wall times, the ratio of
the medians to the `day` layout's, peak RSS, and how the summaries read the files. Every
layout must give the `day` layout's anomalies (checked: the script stops otherwise).

    cargo build --release -p procforest -p procforest-cluster -p procforest-pipeline --bins
    python3 bench/layouts.py [EVENTS ...]          # default: 20000000
Tables go to $PROCFOREST_BENCH_DIR (default /tmp/procforest-bench) and are reused.
"""
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from run import timed  # the same /usr/bin/time wrapper as bench/run.py

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/procforest/target")) / "release"
BIN = Path(os.environ.get("PROCFOREST_BIN", TARGET / "procforest"))
WORK = Path(os.environ.get("PROCFOREST_BENCH_DIR", "/tmp/procforest-bench"))
END_DATE = "2026-11-27"
ROUNDS = int(os.environ.get("PROCFOREST_BENCH_ROUNDS", "5"))

LAYOUTS = {
    "day": [],
    "100/day": ["--files-per-day", "100"],
    "unpart": ["--unpartitioned"],
    "unpart-100": ["--unpartitioned", "--files-per-day", "100"],
    "dv": ["--duplicates", "0.02"],
}


def table(events, layout):
    suffix = "" if layout == "day" else "-" + layout.replace("/", "-per-")
    path = WORK / f"events-{events}{suffix}"
    if not (path / "_delta_log").is_dir():
        hosts = max(50, events // 20000)
        _, wall, _ = timed([BIN, "generate", "--out", path, "--events", events, "--days", 30,
                         "--hosts", hosts, "--seed", 1, "--end-date", END_DATE,
                         "--attack-rate", 0.01, *LAYOUTS[layout]])
        print(f"generated {path} in {wall:.0f} s", file=sys.stderr)
    return path


def run(path):
    with tempfile.TemporaryDirectory() as tmp:
        manifest, anomalies = Path(tmp) / "m.json", Path(tmp) / "a.jsonl"
        _, wall, rss = timed([BIN, "run", "--table", path, "--as-of", END_DATE, "--quiet",
                           "--manifest", manifest, "--json", anomalies])
        return wall, rss, json.loads(manifest.read_text()), anomalies.read_text()


def bench(events):
    paths = {layout: table(events, layout) for layout in LAYOUTS}
    walls = {layout: [] for layout in LAYOUTS}
    facts = {}
    for _ in range(ROUNDS):
        for layout, path in paths.items():
            wall, rss, manifest, anomalies = run(path)
            walls[layout].append(wall)
            facts[layout] = (rss, manifest, anomalies)
    reference = facts["day"][2]
    for layout, (_, _, anomalies) in facts.items():
        if anomalies != reference:
            sys.exit(f"{layout}: the anomalies differ from the day layout's")
    base = statistics.median(walls["day"])
    print(f"\n{events:,} events, {ROUNDS} alternating rounds, notebook preset "
          f"(every layout gave the same {len(reference.splitlines())} anomalies)\n")
    print("| layout | files | median s | fastest s | median / day | peak RSS MiB | summaries |")
    print("|---|---|---|---|---|---|---|")
    for layout in LAYOUTS:
        rss, manifest, _ = facts[layout]
        median = statistics.median(walls[layout])
        print(f"| {layout} | {manifest['files']['files_scanned']} | {median:.2f} | "
              f"{min(walls[layout]):.2f} | {median / base:.2f} | {rss:.0f} | "
              f"{manifest['summary_sources']} |")


if __name__ == "__main__":
    for n in (sys.argv[1:] or ["20000000"]):
        bench(int(n))
