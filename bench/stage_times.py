#!/usr/bin/env python3
"""Where a run's Ballista job spends its time, stage by stage (the groups' evidence, issue 25).

Usage: PROCFOREST_LOG=info,ballista_scheduler=debug procforest run ... 2> LOG
       python3 bench/stage_times.py LOG [JOB_ID]

Reads the scheduler's "Stage finished" plans with their metrics and the executors' task
times from a run's log, and prints, for JOB_ID (default: the run's longest job), each
stage's summed task time and its top operators, then the job's total task time (more
than its wall time: stages and tasks run side by side).
"""

import re
import sys

UNITS = {"ms": 1.0, "s": 1000.0, "µs": 0.001}


def main():
    log = open(sys.argv[1]).read().split("\n")
    jobs = {}
    for line in log:
        m = re.search(r"Job ([0-9A-Z]+) finished executing in ([0-9.]+)(ms|s)\b", line)
        if m:
            jobs[m.group(1)] = float(m.group(2)) * UNITS[m.group(3)]
    job = sys.argv[2] if len(sys.argv) > 2 else max(jobs, key=jobs.get)
    print("jobs (ms):", {k: round(v) for k, v in jobs.items()})
    task_ms = {}
    for line in log:
        m = re.search(r"Finished task : \[TID " + job + r"/(\d+)\.\d+/\d+\.\d+\] in ([0-9.]+)(ms|s|µs)", line)
        if m:
            stage = int(m.group(1))
            task_ms[stage] = task_ms.get(stage, 0.0) + float(m.group(2)) * UNITS[m.group(3)]
    total = 0.0
    i = 0
    while i < len(log):
        m = re.search(r"=== \[" + job + r"/(\d+)\] Stage finished", log[i])
        i += 1
        if not m:
            continue
        plan = []
        while i < len(log) and log[i].strip():
            plan.append(re.sub(r"^\s*", "", log[i])[:100])
            i += 1
        stage = int(m.group(1))
        total += task_ms.get(stage, 0.0)
        print(f"stage {stage:2d} {task_ms.get(stage, 0.0):7.0f} ms | " + " || ".join(plan[:3]))
    print(f"job {job}: {total:.0f} ms of task time")


if __name__ == "__main__":
    main()
