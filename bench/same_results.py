#!/usr/bin/env python3
"""Do two builds of procforest give the same answers? (The architecture issue's check.)

Runs the `procforest` binaries of two builds on the same tables with the same settings
and compares, byte for byte, what a user gets: the anomalies (JSON lines, in report
order, with features, explanations and command lines), every score (`--scores-out`,
compared as sorted rows: the file's row order follows the executors' timing), the model
(`--model-out`) and the manifest's model hash and counts.

Tables: the bundled sample (no --table) and generated tables of each size given (made
once with the NEW build's `generate`, seed 1, 500 hosts, 30 days, kept in the work
folder). Variants per table: the notebook's settings, `--features rarity`, and a set
`--contamination 0.005`; three partitions.

    python3 -m venv ~/.cache/procforest/venv && ~/.cache/procforest/venv/bin/pip install pyarrow
    ~/.cache/procforest/venv/bin/python bench/same_results.py OLD_BIN_DIR NEW_BIN_DIR \
        [EVENTS ...]    # default: 1000000 20000000

Exits 1 and names every difference if there is one. Work folder:
$PROCFOREST_SAME_DIR (default /tmp/procforest-same).
"""
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

WORK = Path(os.environ.get("PROCFOREST_SAME_DIR", "/tmp/procforest-same"))
END_DATE = "2026-11-27"
VARIANTS = {
    "notebook": [],
    "rarity": ["--features", "rarity"],
    "contamination": ["--contamination", "0.005"],
}


def sha(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def generate(binary, events):
    table = WORK / f"events-{events}"
    if not (table / "_delta_log").exists():
        subprocess.run([binary, "generate", "--out", table, "--events", str(events),
                        "--days", "30", "--hosts", "500", "--seed", "1",
                        "--end-date", END_DATE], check=True, stdout=subprocess.DEVNULL)
    return table


def run(binary, table, extra, out):
    out.mkdir(parents=True, exist_ok=True)
    args = [binary, "run", "--partitions", "3", "--quiet",
            "--json", out / "anomalies.jsonl", "--scores-out", out / "scores.parquet",
            "--model-out", out / "model.json", "--manifest", out / "manifest.json", *extra]
    if table is not None:
        args += ["--table", table, "--as-of", END_DATE]
    done = subprocess.run(args, capture_output=True, text=True,
                          env={**os.environ, "PROCFOREST_LOG": "warn"})
    if done.returncode != 0:
        sys.exit(f"{binary} {extra} failed ({done.returncode}): {done.stderr}")
    return out


def sorted_scores(path):
    rows = pq.read_table(path).to_pylist()
    return sorted(json.dumps(r, sort_keys=True, default=str) for r in rows)


def compare(old, new):
    """The differences between two runs' outputs, as sentences."""
    problems = []
    for name in ("anomalies.jsonl", "model.json"):
        if sha(old / name) != sha(new / name):
            problems.append(f"{name} differs")
    if sorted_scores(old / "scores.parquet") != sorted_scores(new / "scores.parquet"):
        problems.append("scores.parquet differs")
    mo, mn = (json.loads((d / "manifest.json").read_text()) for d in (old, new))
    for key in ("events", "groups", "report_groups", "anomalies", "categories"):
        if mo[key] != mn[key]:
            problems.append(f"manifest {key}: {mo[key]} against {mn[key]}")
    if mo["model"]["hash"] != mn["model"]["hash"]:
        problems.append(f"model hash {mo['model']['hash']} against {mn['model']['hash']}")
    return problems, mn


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    old_bin, new_bin = (Path(a) / "procforest" for a in sys.argv[1:3])
    sizes = [int(a) for a in sys.argv[3:]] or [1_000_000, 20_000_000]
    WORK.mkdir(parents=True, exist_ok=True)
    tables = [("sample", None)] + [(f"{n}", generate(new_bin, n)) for n in sizes]
    failures = 0
    for label, table in tables:
        for variant, extra in VARIANTS.items():
            out = WORK / "runs" / label / variant
            old = run(old_bin, table, extra, out / "old")
            new = run(new_bin, table, extra, out / "new")
            problems, manifest = compare(old, new)
            status = "identical" if not problems else "DIFFERENT: " + "; ".join(problems)
            print(f"{label:>9} {variant:<13} {manifest['anomalies']:>7} anomalies of "
                  f"{manifest['report_groups']:>7} report groups, model "
                  f"{manifest['model']['hash'][:12]}: {status}", flush=True)
            failures += bool(problems)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
