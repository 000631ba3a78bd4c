#!/usr/bin/env python3
"""Public attacks replayed into generated tenants (issue 24; results in EVALUATION.md).

For tenants of 100, 500 and 2,000 hosts (14 days, about 700 events per host per day, no
generated attacks) and seeds 1-3, replays SCENARIOS of the public attack scenarios in
datasets/attacks/public-attacks.jsonl into the last day (`procforest evaluate --inject`,
the seed choosing the scenarios, hosts and accounts) and measures the presets and, with the
soc preset's model settings, each feature set. Prints Markdown tables of the mean (and
range) over the seeds. A third run replays the attacks as each host's machine account
(`--inject-as machine`), into the groups a machine account runs every day; two more run
the soc preset with one forest (`--scoring forest`), as it was before scoring by families.

    cargo build --release -p procforest -p procforest-cluster -p procforest-pipeline --bins
    python3 bench/replay.py        # tables go to $PROCFOREST_EVAL_DIR (/tmp/procforest-eval)
    python3 bench/replay.py 100    # one tenant size
    python3 bench/replay.py machine 100 500   # one of the runs (presets, features, machine)
"""
import json
import os
import sys
import tempfile
from pathlib import Path

from evaluation import run  # runs a procforest command, stopping on failure

REPO = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/procforest/target")) / "release"
BIN = TARGET / "procforest"
WORK = Path(os.environ.get("PROCFOREST_EVAL_DIR", "/tmp/procforest-eval"))
ATTACKS = REPO / "datasets/attacks/public-attacks.jsonl"
END_DATE = "2026-11-27"
DAYS = 14
EVENTS_PER_HOST = 10_000  # over the 14 days
HOSTS = [100, 500, 2000]
SEEDS = [1, 2, 3]
SCENARIOS = 10
RUNS = {
    "presets": ("presets", ["--presets", "notebook,soc"]),
    # Measured with one forest, to compare the feature sets themselves.
    "features": ("soc settings with one forest, each feature set",
                 ["--preset", "soc", "--scoring", "forest",
                  "--feature-sets", "rarity,rarity-only,evidence"]),
    "machine": ("presets, the attacks run as each host's machine account",
                ["--presets", "notebook,soc", "--inject-as", "machine"]),
    # The soc preset as it was before scoring by families: one forest over every feature.
    "forest": ("soc with one forest (`--scoring forest`)",
               ["--presets", "soc", "--scoring", "forest"]),
    "machine-forest": ("soc with one forest, the attacks run as each host's machine account",
                       ["--presets", "soc", "--scoring", "forest", "--inject-as", "machine"]),
}
METRICS = ["flagged_fraction", "precision", "recall", "p@10", "p@50", "roc_auc", "pr_auc",
           "mixed_recall", "new_recall"]


def tenant(hosts, seed):
    path = WORK / f"tenant-h{hosts}-s{seed}"
    if not (path / "_delta_log").is_dir():
        run([BIN, "generate", "--out", path, "--events", hosts * EVENTS_PER_HOST, "--days", DAYS,
             "--hosts", hosts, "--seed", seed, "--end-date", END_DATE, "--attack-rate", 0])
    return path


def evaluate(hosts, seed, extra):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e.json"
        run([BIN, "evaluate", "--table", tenant(hosts, seed), "--as-of", END_DATE, "--window", "1d",
             "--inject", ATTACKS, "--inject-seed", seed, "--inject-scenarios", SCENARIOS,
             "--json", out, *extra])
        rows = json.loads(out.read_text())
    for r in rows:
        for k, v in r.pop("precision_at").items():
            r[f"p@{k}"] = v
        kinds = r.pop("kinds", {})
        for kind in ["mixed", "new"]:
            r[f"{kind}_groups"] = kinds.get(kind, {}).get("groups", 0)
            r[f"{kind}_recall"] = kinds.get(kind, {}).get("recall")
    return {r["variant"]: r for r in rows}


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1 or max(values) - min(values) < 0.0005:
        return f"{mean:.3f}"
    return f"{mean:.3f} ({min(values):.2f}–{max(values):.2f})"


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    runs = [a for a in sys.argv[1:] if a in RUNS] or list(RUNS)
    sizes = [int(a) for a in sys.argv[1:] if a not in RUNS] or HOSTS
    for label, extra in (RUNS[r] for r in runs):
        print(f"### {label}\n")
        print("| hosts | variant | attacked (mixed) / groups | " + " | ".join(METRICS) + " |")
        print("|---" * (3 + len(METRICS)) + "|")
        for hosts in sizes:
            results = [evaluate(hosts, s, extra) for s in SEEDS]
            for variant in results[0]:
                rs = [r[variant] for r in results]
                counts = "/".join(f"{r['labelled']} ({r['mixed_groups']})" for r in rs) + \
                    " of " + "/".join(str(r["groups"]) for r in rs)
                cells = [fmt([r[m] for r in rs]) for m in METRICS]
                print(f"| {hosts} | {variant} | {counts} | " + " | ".join(cells) + " |", flush=True)
        print()


if __name__ == "__main__":
    main()
