#!/usr/bin/env python3
"""procforest's detection-quality evaluation (issue 9; results in EVALUATION.md).

Generates labelled tables at several attack rates and seeds, runs `procforest evaluate`
on each with several model settings, and prints Markdown tables of the mean (and range)
of each metric over the seeds, plus the bundled real sample.

    cargo build --release -p procforest --bins
    python3 bench/evaluation.py            # tables go to $PROCFOREST_EVAL_DIR (/tmp/procforest-eval)
    python3 bench/evaluation.py presets    # the notebook and soc presets on the same tables
"""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET = Path(os.environ.get("CARGO_TARGET_DIR", Path.home() / ".cache/procforest/target")) / "release"
BIN = TARGET / "procforest"
WORK = Path(os.environ.get("PROCFOREST_EVAL_DIR", "/tmp/procforest-eval"))
END_DATE = "2026-11-27"
RATES = [0.005, 0.02, 0.05]
WINDOW = "7d"
SEEDS = [1, 2, 3]
SETTINGS = [
    ("auto, 100 samples", []),
    ("auto, 256 samples", ["--max-samples", "256"]),
    ("contamination 0.01, 100 samples", ["--contamination", "0.01"]),
    ("contamination 0.01, 256 samples", ["--contamination", "0.01", "--max-samples", "256"]),
]
METRICS = ["flagged_fraction", "precision", "recall", "p@10", "p@50", "roc_auc", "pr_auc"]


def run(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                       env={**os.environ, "PROCFOREST_LOG": "error"})
    if r.returncode != 0:
        sys.exit(f"{cmd} failed:\n{r.stderr[-3000:]}")
    return r.stdout


def table(rate, seed):
    path = WORK / f"events-r{rate}-s{seed}"
    if not (path / "_delta_log").is_dir():
        run([BIN, "generate", "--out", path, "--events", 1_000_000, "--days", 14, "--hosts", 100,
             "--seed", seed, "--end-date", END_DATE, "--attack-rate", rate])
    return path


def evaluate(extra, variants=("--feature-sets", "seed,rarity,rarity-only")):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "e.json"
        run([BIN, "evaluate", *variants, "--json", out, *extra])
        rows = json.loads(out.read_text())
    for r in rows:
        for k, v in r.pop("precision_at").items():
            r[f"p@{k}"] = v
    return {r["variant"]: r for r in rows}


def fmt(values):
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1 or max(values) - min(values) < 0.0005:
        return f"{mean:.3f}"
    return f"{mean:.3f} ({min(values):.2f}–{max(values):.2f})"


def presets():
    """The presets on the same tables (the soc preset's own settings)."""
    print("### Presets\n")
    print("| attack rate | preset | labelled (mixed) / groups in report | " + " | ".join(METRICS + ["mixed recall"]) + " |")
    print("|---" * (4 + len(METRICS)) + "|")
    for rate in RATES:
        results = [evaluate(["--table", table(rate, s), "--as-of", END_DATE, "--window", WINDOW],
                            ("--presets", "notebook,soc")) for s in SEEDS]
        for variant in results[0]:
            rs = [r[variant] for r in results]
            mixed = lambda r: r.get("kinds", {}).get("mixed", {})
            counts = "/".join(f"{r['labelled']} ({mixed(r).get('groups', 0)})" for r in rs) + \
                " of " + "/".join(str(r["groups"]) for r in rs)
            cells = [fmt([r[m] for r in rs if m == "flagged_fraction" or r["labelled"] > 0])
                     for m in METRICS]
            cells.append(fmt([mixed(r)["recall"] for r in rs if mixed(r)]))
            print(f"| {rate} | {variant} | {counts} | " + " | ".join(cells) + " |", flush=True)
    print()


def main():
    WORK.mkdir(parents=True, exist_ok=True)
    if sys.argv[1:] == ["presets"]:
        return presets()
    for label, extra in SETTINGS:
        print(f"### {label}\n")
        print("| attack rate | features | labelled / groups in report | " + " | ".join(METRICS) + " |")
        print("|---" * (3 + len(METRICS)) + "|")
        for rate in RATES:
            results = [evaluate(["--table", table(rate, s), "--as-of", END_DATE, "--window", WINDOW, *extra])
                       for s in SEEDS]
            for fs in ["seed", "rarity", "rarity-only"]:
                rs = [r[fs] for r in results]
                counts = "/".join(str(r["labelled"]) for r in rs) + " of " + "/".join(str(r["groups"]) for r in rs)
                # Label metrics only where the window holds labelled groups.
                cells = [fmt([r[m] for r in rs if m == "flagged_fraction" or r["labelled"] > 0])
                         for m in METRICS]
                print(f"| {rate} | {fs} | {counts} | " + " | ".join(cells) + " |")
        print()
    print("### Bundled real sample (auto, 100 samples, report window: its last day)\n")
    sample = evaluate([])
    print("| features | labelled / groups | " + " | ".join(METRICS) + " |")
    print("|---" * (2 + len(METRICS)) + "|")
    for fs, r in sample.items():
        print(f"| {fs} | {r['labelled']} / {r['groups']} | " + " | ".join(fmt([r[m]]) for m in METRICS) + " |")


if __name__ == "__main__":
    main()
