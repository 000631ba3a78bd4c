#!/usr/bin/env python3
"""scikit-learn score_samples speed on 1 M rows x 6 features shaped like procforest's
features, 100 trees of max_samples=100: the reference for BENCHMARKS.md.
Run: OMP_NUM_THREADS=1 python3 iforest/tools/sklearn_score_speed.py"""
import numpy as np, time, os
from sklearn.ensemble import IsolationForest
rng = np.random.default_rng(1)
n = 1_000_000
X = np.column_stack([
    1_700_000_000 + 86_400 * rng.integers(0, 30, n),
    np.floor(rng.random(n)**3 * 2000), np.floor(rng.random(n)**3 * 5000),
    rng.integers(0, 2, n), np.floor(rng.random(n)**4 * 800), np.floor(1/(1-rng.random(n)))]).astype(np.float64)
m = IsolationForest(max_samples=100, random_state=42).fit(X)
depths = [e.get_depth() for e in m.estimators_]
print("max depth", max(depths))
for rep in range(2):
    t0 = time.process_time(); w0 = time.time(); s = m.score_samples(X); t1 = time.process_time(); w1 = time.time()
    print(f"score_samples 1M rows: cpu {t1-t0:.3f}s wall {w1-w0:.3f}s -> {n/(t1-t0):,.0f} rows/cpu-s")
