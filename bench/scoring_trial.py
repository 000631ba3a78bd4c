#!/usr/bin/env python3
"""How to combine the evidence features into one score (issue 24; EVALUATION.md).

A trial outside procforest, on the features procforest computes: for each replayed tenant
(bench/replay.py's tenants and seeds, attacks mapped or run as the machine account), the
table with the attacks replayed is kept, every group of its 14 days is scored with the soc
preset's features and written with `--scores-out`, and scikit-learn then compares ways of
scoring them against the replay's labels:

  one         one IsolationForest over the 14 evidence features (the soc preset before)
  w=0, ¼, ½, 1  a forest per family (rarity with the count, novelty, lineage, first
              seen); each row's family score as an empirical p-value against the training
              sample's, p = (1 + #{training <= s}) / (N + 1); score = ln p_min + w · Σ ln
              p_other (w = 1 is Fisher's sum); threshold at the training scores' 1 %

Training rows: 25,600 groups drawn at random from the 14 days (procforest draws the same
number by a seeded hash); 100 trees of 256 rows, random_state 42.

    python3 -m venv /tmp/pa && /tmp/pa/bin/pip install pyarrow pandas scikit-learn
    PROCFOREST_EVAL_DIR=/tmp/procforest-eval python3 bench/replay.py presets 100 500  # tenants
    /tmp/pa/bin/python bench/scoring_trial.py 100 500
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.ensemble import IsolationForest
from sklearn.metrics import average_precision_score

from replay import ATTACKS, BIN, WORK, END_DATE as REPORT_DAY  # the replay's tenants

KEYS = ["Computer", "Account", "AccountType", "Process"]
RARITY = ["event_count", "pair_log_groups", "log_p_process_given_account",
          "log_p_process_given_computer", "log_process_host_share"]
NOVELTY = ["novel_template_share", "log_rarest_template_events", "log_rarest_template_hosts",
           "longest_line_log2", "line_entropy"]
LINEAGE = ["log_rarest_lineage_events", "lineage_new_on_host"]
FIRST_SEEN = ["process_new_on_host", "process_new_for_account"]
FAMILIES = [RARITY, NOVELTY, LINEAGE, FIRST_SEEN]
WEIGHTS = [0.0, 0.25, 0.5, 1.0]


def scored_groups(hosts, seed, mode, tmp):
    """Every group of the tenant with the attacks replayed, its features and its label."""
    kept, scores = Path(tmp) / "kept", Path(tmp) / "scores"
    subprocess.run([BIN, "evaluate", "--table", WORK / f"tenant-h{hosts}-s{seed}", "--as-of",
                    REPORT_DAY, "--window", "1d", "--inject", ATTACKS, "--inject-seed", str(seed),
                    "--inject-scenarios", "10", "--inject-as", mode, "--presets", "notebook",
                    "--inject-keep", kept], check=True, capture_output=True)
    subprocess.run([BIN, "run", "--table", kept, "--as-of", REPORT_DAY, "--window", "14d",
                    "--preset", "soc", "--quiet", "--scores-out", scores], check=True,
                   capture_output=True)
    groups = pd.read_parquet(scores)
    labels = pd.read_parquet(kept / "_procforest/labels.parquet")
    groups["day"] = groups["interval"].dt.strftime("%Y-%m-%d")
    labels["day"] = labels["day"].astype(str)
    groups = groups.merge(labels[["day"] + KEYS + ["attack_events"]], on=["day"] + KEYS, how="left")
    groups["attack"] = groups["attack_events"].notna()
    groups["mixed"] = groups["attack"] & (groups["attack_events"] < groups["count"])
    # The scores folder's row order depends on which task wrote first: sort, so that the
    # sample below draws the same rows every time.
    return groups.sort_values(["day"] + KEYS, kind="stable").reset_index(drop=True)


def measure(report, score, flagged):
    y, mixed = report["attack"].values, report["mixed"].values
    top = np.argsort(score, kind="stable")[:10]
    return {"flagged": flagged.mean(), "recall": (flagged & y).sum() / y.sum(),
            "mixed found": f"{(flagged & mixed).sum()}/{mixed.sum()}", "p@10": y[top].mean(),
            "average precision": average_precision_score(y, -score)}


def forest(x):
    return IsolationForest(n_estimators=100, max_samples=256, random_state=42).fit(x)


def trial(groups):
    report = groups[groups["day"] == REPORT_DAY]
    sample = groups.sample(n=min(25_600, len(groups)), random_state=1)
    every = sum(FAMILIES, [])
    one = forest(sample[every].values)
    threshold = np.quantile(one.score_samples(sample[every].values), 0.01)
    score = one.score_samples(report[every].values)
    results = {"one": measure(report, score, score < threshold)}
    train_p, report_p = [], []
    for columns in FAMILIES:
        f = forest(sample[columns].values)
        training = np.sort(f.score_samples(sample[columns].values))
        p = lambda s: (1 + np.searchsorted(training, s, side="right")) / (len(training) + 1)
        train_p.append(np.log(p(f.score_samples(sample[columns].values))))
        report_p.append(np.log(p(f.score_samples(report[columns].values))))
    for w in WEIGHTS:
        combine = lambda logs: (lambda s: s[0] + w * s[1:].sum(axis=0))(np.sort(np.vstack(logs), axis=0))
        threshold = np.quantile(combine(train_p), 0.01)
        score = combine(report_p)
        results[f"w={w}"] = measure(report, score, score < threshold)
    return results


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [100, 500]
    rows = []
    for hosts in sizes:
        for mode in ["mapped", "machine"]:
            for seed in [1, 2, 3]:
                with tempfile.TemporaryDirectory() as tmp:
                    for variant, r in trial(scored_groups(hosts, seed, mode, tmp)).items():
                        rows.append({"hosts": hosts, "mode": mode, "seed": seed, "variant": variant, **r})
    table = pd.DataFrame(rows)
    metrics = ["flagged", "recall", "p@10", "average precision"]
    summary = table.groupby(["hosts", "mode", "variant"], sort=False)[metrics].agg(["mean", "min"])
    print(summary.round(3).to_markdown())
    mixed = table.groupby(["hosts", "mode", "variant"], sort=False)["mixed found"].agg(" ".join)
    print(mixed.to_markdown())


if __name__ == "__main__":
    main()
