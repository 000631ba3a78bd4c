#!/usr/bin/env python3
"""procforest's end-to-end benchmark (issue 7).

For each table size: generate the table once (release binary), then in one run time
  - the job standalone (per phase, from its manifest; wall time and peak RSS from
    /usr/bin/time) and a bare DataFusion GROUP BY of the same columns over the same files
    (pipeline/examples/bare_aggregation.rs), alternating, PROCFOREST_BENCH_ROUNDS times each
    (default 15 up to 5 M events, else 5): their medians give the ratio job / bare
    aggregation (and their fastest runs a second one);
  - the job on a loopback cluster (a scheduler and two executors, separate processes) and
    variants of the bare query, each the fastest of PROCFOREST_BENCH_REPEAT runs (default 3),
and print a Markdown table with rows/s and the ratios; then time the scorer alone
(iforest/examples/score_speed.rs, one thread).

    cargo build --release -p procforest -p procforest-cluster -p procforest-pipeline --bins \
        --example bare_aggregation
    cargo build --release -p procforest-iforest --example score_speed
    python3 bench/run.py [EVENTS ...]          # default: 1000000 5000000 20000000
Tables go to $PROCFOREST_BENCH_DIR (default /tmp/procforest-bench) and are reused; the
binaries are run from fresh copies made there at the start (see fresh_copies).
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/procforest/target")) / "release"
BIN = TARGET / "procforest"
BARE = TARGET / "examples" / "bare_aggregation"
SCHEDULER = TARGET / "procforest-scheduler"
EXECUTOR = TARGET / "procforest-executor"
SCORER = TARGET / "examples" / "score_speed"
WORK = Path(os.environ.get("PROCFOREST_BENCH_DIR", "/tmp/procforest-bench"))
END_DATE = "2026-11-27"
# The job's own scan when every file holds one day: the day is a column known per file and
# the scan is partitioned by it, so the GROUP BY needs no shuffle (see core/src/scan.rs).
DAY_SCAN_SQL = ('SELECT "__procforest_file_interval_86400000000us", "Computer", "Account", '
                '"AccountType", "Process", count(*) FROM events GROUP BY 1, 2, 3, 4, 5')
DATE_TRUNC_SQL = ("SELECT date_trunc('day', \"TimeGenerated\"), \"Computer\", \"Account\", "
                  "\"AccountType\", \"Process\", count(*) FROM events GROUP BY 1, 2, 3, 4, 5")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


REPEAT = int(os.environ.get("PROCFOREST_BENCH_REPEAT", "3"))


def best(run):
    """The fastest of REPEAT calls of run() (wall times on a shared VM vary by ±20 %)."""
    return min((run() for _ in range(REPEAT)), key=lambda r: r[1])


def alternating(runs, rounds):
    """Calls each of `runs` (name -> function returning (.., wall, ..)) in turn, `rounds`
    times, so that the VM's drift over minutes falls on all of them alike; returns per
    name the results sorted by wall time (the ratio of the job to the bare query is only
    meaningful within such a batch: their absolute times drift by 10-20 % between
    batches)."""
    results = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    return {name: sorted(r, key=lambda x: x[1]) for name, r in results.items()}


def median(results):
    """The median result by wall time of a sorted list (the lower one of an even count)."""
    return results[(len(results) - 1) // 2]


def rounds_for(events):
    """Rounds of alternating runs: many for the small tables, where a run takes a tenth of
    a second and the VM's noise is a large part of it."""
    return int(os.environ.get("PROCFOREST_BENCH_ROUNDS", 15 if events <= 5_000_000 else 5))


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS MiB)."""
    t0 = time.time()
    r = subprocess.run(["/usr/bin/time", "-v", *map(str, cmd)], capture_output=True, text=True,
                       env={**os.environ, "PROCFOREST_LOG": "warn", **(env or {})})
    wall = time.time() - t0
    if r.returncode != 0:
        sys.exit(f"{cmd} failed:\n{r.stderr[-3000:]}")
    rss = next(int(l.split()[-1]) for l in r.stderr.splitlines() if "Maximum resident" in l) / 1024
    return r.stdout, wall, rss


def measured(args, out, env=None):
    """Runs a `procforest run … --json OUT`: its wall and process CPU seconds, and its
    anomalies without the run id (to compare runs and builds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    r = subprocess.run([*map(str, args)], env=env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    if r.returncode != 0:
        sys.exit(f"{args} failed:\n{r.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    with open(out) as f:
        anomalies = [{k: v for k, v in json.loads(l).items() if k != "run_id"} for l in f]
    return wall, cpu, anomalies


def table(events):
    path = WORK / f"events-{events}"
    if not (path / "_delta_log").is_dir():
        hosts = max(50, events // 20000)
        timed([BIN, "generate", "--out", path, "--events", events, "--days", 30, "--hosts", hosts,
               "--seed", 1, "--end-date", END_DATE, "--attack-rate", 0.01])
    return path


def job(path, extra):
    with tempfile.TemporaryDirectory() as tmp:
        manifest = Path(tmp) / "m.json"
        _, wall, rss = timed([BIN, "run", "--table", path, "--as-of", END_DATE, "--quiet",
                              "--manifest", manifest, *extra])
        return rss, wall, json.loads(manifest.read_text())


class Cluster:
    def __init__(self, executors=2):
        self.tmp = tempfile.TemporaryDirectory()
        self.port = free_port()
        self.procs = [subprocess.Popen(
            [SCHEDULER, "--bind-host", "127.0.0.1", "--external-host",
             "127.0.0.1", "--bind-port", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        time.sleep(1)
        for i in range(executors):
            wd = Path(self.tmp.name) / f"e{i}"
            wd.mkdir()
            self.procs.append(subprocess.Popen(
                [EXECUTOR, "--bind-host", "127.0.0.1", "--external-host",
                 "127.0.0.1", "--bind-port", str(free_port()), "--bind-grpc-port", str(free_port()),
                 "--bind-health-port", str(free_port()), "--scheduler-host", "127.0.0.1",
                 "--scheduler-port", str(self.port), "--work-dir", str(wd), "--vcores", "1"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(3)

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.tmp.cleanup()


def fresh_copies():
    """Points BIN, BARE, SCHEDULER and EXECUTOR at copies of the build's binaries written
    now, together (stripped of debug info, which no run reads). How the kernel caches a
    binary's file moves a 1 M run by 5-10 ms: a freshly written file starts and exits
    faster than the same bytes evicted and read back from disk (BENCHMARKS.md). Fresh
    copies put the job and the bare query in the same state, whatever happened to the
    build's files since they were linked."""
    global BIN, BARE, SCHEDULER, EXECUTOR
    out = WORK / "bin"
    out.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in (BIN, BARE, SCHEDULER, EXECUTOR):
        copy = out / path.name
        copy.unlink(missing_ok=True)
        try:
            subprocess.run(["strip", "-o", str(copy), str(path)], check=True)
        except (OSError, subprocess.CalledProcessError):
            shutil.copyfile(path, copy)
            copy.chmod(0o755)
        copies.append(copy)
    BIN, BARE, SCHEDULER, EXECUTOR = copies


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [1_000_000, 5_000_000, 20_000_000]
    WORK.mkdir(parents=True, exist_ok=True)
    fresh_copies()
    rows = []
    for n in sizes:
        path = table(n)
        # The job and the bare GROUP BY alternate; their medians make the headline ratio.
        paired = alternating({
            "bare": lambda: timed([BARE, path, 2]),
            "job": lambda: job(path, ["--partitions", "2"]),
        }, rounds_for(n))
        bare_out, bare_wall, bare_rss = median(paired["bare"])
        bare = json.loads(bare_out)
        s_rss, s_wall, s_m = median(paired["job"])
        bare_min, job_min = paired["bare"][0][1], paired["job"][0][1]
        # The same GROUP BY written the obvious way, with DataFusion's date_trunc.
        _, trunc_wall, _ = best(lambda: timed([BARE, path, 2], env={"BARE_SQL": DATE_TRUNC_SQL}))
        _, day_wall, _ = best(lambda: timed([BARE, path, 2], env={
            "BARE_SQL": DAY_SCAN_SQL, "BARE_FILE_INTERVALS": "1"}))
        # The keys read as the table's plain strings instead of string views.
        _, plain_wall, _ = best(lambda: timed([BARE, path, 2], env={"BARE_PLAIN_STRINGS": "1"}))
        cluster = Cluster()
        try:
            c_rss, c_wall, c_m = best(lambda: job(
                path, ["--partitions", "2", "--scheduler", f"df://127.0.0.1:{cluster.port}"]))
        finally:
            cluster.close()
        rows.append((n, bare, bare_wall, bare_rss, s_wall, s_rss, s_m, c_wall, c_rss, c_m, trunc_wall,
                     day_wall, plain_wall, bare_min, job_min, len(paired["job"])))
    print("| events | groups | bare GROUP BY (median) | bare with date_trunc | bare on the job's day scan | bare, keys as plain strings | job standalone (median) | job / bare (medians) | job / bare (fastest) | job / bare with date_trunc | job / bare on the day scan | standalone phases (s) | peak RSS standalone | job on 2 executors | events/s standalone |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for n, bare, bw, brss, sw, srss, sm, cw, crss, cm, tw, dw, pw, bmin, jmin, rounds in rows:
        phases = ", ".join(f"{k} {v:.3f}" for k, v in sm["phases"].items())
        print(f"| {n:,} | {sm['groups']:,} | {bw:.3f} s ({brss:.0f} MiB) | {tw:.2f} s | {dw:.2f} s | {pw:.2f} s | {sw:.3f} s | {sw / bw:.2f}× ({rounds} rounds) | {jmin / bmin:.2f}× | {sw / tw:.2f}× | {sw / dw:.2f}× | {phases} | "
              f"{srss:.0f} MiB | {cw:.2f} s (driver {crss:.0f} MiB) | {n / sw:,.0f} |")
    print()
    scorer_out, _, _ = timed([SCORER, 1_000_000])
    scorer = json.loads(scorer_out)
    print(f"Scorer alone (one thread, 1 M rows, 100 trees, max_samples 100): "
          f"{scorer['rows_per_second'] / 1e6:.2f} M rows/s")
    print()
    print(json.dumps([{"events": r[0], "bare_s": r[2], "bare_day_scan_s": r[11], "bare_plain_strings_s": r[12],
                       "standalone_s": r[4], "cluster_s": r[7], "bare_fastest_s": r[13],
                       "standalone_fastest_s": r[14], "rounds": r[15],
                       "standalone_phases": r[6]["phases"], "cluster_phases": r[9]["phases"],
                       "standalone_rss_mib": r[5]} for r in rows], indent=1))


if __name__ == "__main__":
    main()
