#!/usr/bin/env python3
"""Export scikit-learn IsolationForest models as JSON fixtures for procforest-iforest's tests.

Each fixture holds the fitted trees' own node arrays (children, feature, threshold,
n_node_samples, missing_go_to_left), every tree's feature subset, max_samples_ and offset_,
plus rows to score and scikit-learn's score_samples, decision_function and predict on them.
The Rust tests load the trees and must reproduce the scores to 1e-12 and predict exactly,
without Python.

Usage: python3 iforest/tools/export_sklearn.py OUT_DIR   (needs scikit-learn and numpy)
Regenerating changes the fixtures only if scikit-learn's tree building changes.
"""
import json
import sys
from pathlib import Path

import numpy as np
import sklearn
from sklearn.ensemble import IsolationForest


def export(model, X_score, name, out_dir, note):
    trees = []
    for est in model.estimators_:
        t = est.tree_
        trees.append(
            {
                "children_left": t.children_left.tolist(),
                "children_right": t.children_right.tolist(),
                "feature": t.feature.tolist(),
                "threshold": t.threshold.tolist(),
                "n_node_samples": t.n_node_samples.tolist(),
                "missing_go_to_left": t.missing_go_to_left.astype(int).tolist(),
            }
        )
    doc = {
        "note": note,
        "sklearn_version": sklearn.__version__,
        "n_features": int(model.n_features_in_),
        "max_samples": int(model.max_samples_),
        "offset": float(model.offset_),
        "estimators_features": [f.tolist() for f in model.estimators_features_],
        "trees": trees,
        # Rows to score, column-major (one list per feature); NaN as null.
        "columns": [[None if np.isnan(v) else float(v) for v in col] for col in X_score.T],
        "score_samples": model.score_samples(X_score).tolist(),
        "decision_function": model.decision_function(X_score).tolist(),
        "predict": model.predict(X_score).astype(int).tolist(),
    }
    path = Path(out_dir) / f"{name}.json"
    path.write_text(json.dumps(doc, separators=(",", ":")))
    print(f"{path}: {len(trees)} trees, {X_score.shape[0]} rows scored")


def job_like(rng, n):
    """Rows shaped like procforest's seed features: unix day, four category indices, count."""
    day = 1_700_000_000 - (1_700_000_000 % 86400) + 86400 * rng.integers(0, 30, n)
    computer = rng.zipf(1.6, n) % 200
    account = rng.zipf(1.4, n) % 500
    account_type = rng.integers(0, 2, n)
    process = rng.zipf(1.3, n) % 300
    count = rng.zipf(1.8, n)
    return np.column_stack([day, computer, account, account_type, process, count]).astype(float)


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else "iforest/tests/fixtures"
    rng = np.random.default_rng(7)

    X = job_like(rng, 600)
    outliers = job_like(rng, 20)
    outliers[:, 5] *= 1000
    X_score = np.vstack([X[:200], outliers])
    model = IsolationForest(n_estimators=25, max_samples=100, random_state=42).fit(X)
    export(model, X_score, "sklearn_job_features", out_dir,
           "IsolationForest(n_estimators=25, max_samples=100, random_state=42) on job-like features")

    X = rng.normal(size=(300, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    X[:, 3] = np.round(X[:, 3])  # a discrete column, with ties
    X_score = np.vstack([X[:120], rng.normal(size=(30, 4)) * 4])
    X_score[rng.random(X_score.shape) < 0.15] = np.nan
    model = IsolationForest(
        n_estimators=15, max_samples=64, max_features=0.5, bootstrap=True,
        contamination=0.1, random_state=3,
    ).fit(X)
    export(model, X_score, "sklearn_nan_bootstrap_subset", out_dir,
           "IsolationForest(n_estimators=15, max_samples=64, max_features=0.5, bootstrap=True, "
           "contamination=0.1, random_state=3) on normal data with 10% NaN")


if __name__ == "__main__":
    main()
