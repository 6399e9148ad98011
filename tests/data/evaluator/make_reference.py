#!/usr/bin/env python3
"""Generates the evaluator's test data and the reference answers it is checked against.

Run once (tests never run Python):
    pip install scipy numpy pandas
    python3 tests/data/evaluator/make_reference.py

Writes, next to this script:
  <case>/output.csv      realistic per-request files in the original MoST wrapper's format
  most_reference.json    the verdict of each case by a re-implementation of the original's
                         pipeline (analyze_metrics early gate -> split_results -> evaluate), with
                         pandas / SciPy / NumPy exactly as the original calls them
  stats_reference.json   SciPy / NumPy values for the unit tests of stats.h: Welch t-tests,
                         Cohen's d, percentiles, the seed-42 bootstrap, raw PCG64 draws

The re-implementation follows the original's public source (read, not copied): the median of
completions per UTC minute of the last token (statistics.median over the minutes that have a
completion) must be >= 0.95 * REQ_MIN; FILTER_BUFFER seconds are trimmed from both ends of the
received_timestamp range and the rest is split at its midpoint (first: < mid, second: >= mid;
an empty half makes the original crash, which counts as FALSE); FALSE if success_rate <
threshold; TRUE iff the Welch p >= 0.1 or the mean of a 10,000-resample bootstrap (seed 42) of
mean(first) - mean(second) is > 0.
"""
import datetime as dt
import json
import math
import os
import statistics

import numpy as np
import pandas as pd
import scipy
import scipy.stats as stats

HERE = os.path.dirname(os.path.abspath(__file__))
START = dt.datetime(2026, 3, 14, 10, 0, 0, tzinfo=dt.timezone.utc)


# ---------------------------------------------------------------- data generation

def make_case(name, req_min, duration_s, latency_fn, success_fn=None, seed=0, rate_factor=1.0,
              legacy_header=False, n_workers=8):
    """Open-loop sends at req_min/min, evenly spaced with +-30% jitter of the gap (the original's
    worker threads pace their sends like this); latency_fn(i, t_send, rng) in ms."""
    rng = np.random.default_rng(seed)
    rate_s = req_min * rate_factor / 60.0
    rows = []
    i = 0
    while True:
        t = (i + 0.5 + rng.uniform(-0.3, 0.3)) / rate_s
        if t >= duration_s:
            break
        lat_ms = float(latency_fn(i, t, rng))
        # ns-resolution arithmetic, as the original computes (end - start) / 1e6 from ns stamps
        send_ns = int((START.timestamp() + t) * 1e9)
        end_ns = send_ns + int(lat_ms * 1e6)
        lat_ms = (end_ns - send_ns) / 1_000_000
        ok = True if success_fn is None else bool(success_fn(i, rng))
        end_dt = dt.datetime.fromtimestamp(end_ns / 1e9, tz=dt.timezone.utc)
        rows.append({"received_timestamp": end_dt.strftime("%Y%m%dT%H%M%S"),
                     "complete_response_time": lat_ms, "success": ok,
                     "worker_idx": i % n_workers, "request_idx": i})
        i += 1
    total = len(rows)
    success_rate = sum(r["success"] for r in rows) / total * 100 if total else 0
    rows.sort(key=lambda r: r["received_timestamp"])  # as the original's convert step
    cols = ["received_timestamp", "complete_response_time", "success_rate", "success"]
    if not legacy_header:
        cols += ["worker_idx", "request_idx"]
    os.makedirs(os.path.join(HERE, name), exist_ok=True)
    path = os.path.join(HERE, name, "output.csv")
    with open(path, "w", newline="") as f:
        f.write(",".join(cols) + "\n")
        for r in rows:
            vals = [r["received_timestamp"], repr(r["complete_response_time"]),
                    repr(float(success_rate)), str(r["success"])]
            if not legacy_header:
                vals += [str(r["worker_idx"]), str(r["request_idx"])]
            f.write(",".join(vals) + "\n")
    return path


def lognormal(median_ms, sigma):
    return lambda i, t, rng: median_ms * math.exp(sigma * rng.standard_normal())


CASES = [
    # name, params for make_case, evaluation settings
    dict(name="stable", req_min=60, duration_s=900, filter_buffer_s=300,
         latency=lognormal(2400, 0.15), seed=1),
    dict(name="drifting", req_min=60, duration_s=720, filter_buffer_s=60,
         latency=lambda i, t, rng: (2000 + 6.0 * t) * math.exp(0.1 * rng.standard_normal()),
         seed=2),
    dict(name="improving", req_min=60, duration_s=720, filter_buffer_s=60,
         latency=lambda i, t, rng: (6000 - 4.0 * t) * math.exp(0.1 * rng.standard_normal()),
         seed=3),
    dict(name="low_success", req_min=60, duration_s=600, filter_buffer_s=60,
         latency=lognormal(2400, 0.15), success=lambda i, rng: rng.random() > 0.10, seed=4),
    dict(name="below_gate", req_min=120, duration_s=600, filter_buffer_s=60,
         latency=lognormal(2400, 0.15), seed=5, rate_factor=0.85),
    dict(name="identical", req_min=30, duration_s=600, filter_buffer_s=60,
         latency=lambda i, t, rng: 1000.0, seed=6),
    dict(name="legacy_slight_drift", req_min=90, duration_s=600, filter_buffer_s=30,
         latency=lambda i, t, rng: (2400 + 0.4 * t) * math.exp(0.2 * rng.standard_normal()),
         seed=7, legacy_header=True),
    dict(name="short_buffer_too_big", req_min=60, duration_s=300, filter_buffer_s=300,
         latency=lognormal(2400, 0.15), seed=8),
]


# ---------------------------------------------------------------- the original's logic

def early_gate(df_raw, req_min):
    ts = pd.to_datetime(df_raw["received_timestamp"], format="%Y%m%dT%H%M%S", utc=True)
    per_minute = {}
    for t in ts:
        m = t.replace(second=0, microsecond=0)
        per_minute[m] = per_minute.get(m, 0) + 1
    counts = list(per_minute.values())
    median = float(statistics.median(counts)) if counts else 0.0
    median = float(f"{median:.3f}")  # printed with 3 decimals, then scraped
    return median, len(counts), not (median < 0.95 * req_min)


def split(path, buffer_s):
    df = pd.read_csv(path)
    df["received_timestamp"] = pd.to_datetime(df["received_timestamp"], format="%Y%m%dT%H%M%S",
                                              errors="coerce", utc=True)
    df = df.sort_values("received_timestamp", kind="stable").reset_index(drop=True)
    start, end = df["received_timestamp"].min(), df["received_timestamp"].max()
    fs = start + dt.timedelta(seconds=buffer_s)
    fe = end - dt.timedelta(seconds=buffer_s)
    f = df[(df["received_timestamp"] >= fs) & (df["received_timestamp"] <= fe)].copy()
    mid = fs + (fe - fs) / 2
    return f[f["received_timestamp"] < mid].copy(), f[f["received_timestamp"] >= mid].copy()


def cohens_d(x, y):
    nx, ny = len(x), len(y)
    vx, vy = np.var(x, ddof=1), np.var(y, ddof=1)
    pooled = ((nx - 1) * vx + (ny - 1) * vy) / (nx + ny - 2)
    return (np.mean(x) - np.mean(y)) / np.sqrt(pooled)


def bootstrap_mean_diff(x, y, n_boot=10_000, seed=42):
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        xb = rng.choice(x, size=len(x), replace=True)
        yb = rng.choice(y, size=len(y), replace=True)
        diffs.append(np.mean(xb) - np.mean(yb))
    diffs = np.asarray(diffs)
    lo, hi = np.percentile(diffs, [2.5, 97.5])
    return float(diffs.mean()), float(lo), float(hi)


def num(v):
    v = float(v)
    return None if math.isnan(v) else (("inf" if v > 0 else "-inf") if math.isinf(v) else v)


def evaluate_case(case, path):
    threshold = 95.0
    raw = pd.read_csv(path)
    out = {"name": case["name"], "req_min": case["req_min"],
           "filter_buffer_s": case["filter_buffer_s"], "success_rate_threshold": threshold,
           "rows": int(len(raw))}
    median, buckets, gate_ok = early_gate(raw, case["req_min"])
    out.update(median_per_min=median, minute_buckets=buckets, gate_ok=gate_ok)
    first, second = split(path, case["filter_buffer_s"])
    out.update(first_count=int(len(first)), second_count=int(len(second)))
    if "request_idx" in first.columns:
        out["first_request_idx"] = sorted(int(v) for v in first["request_idx"])
        out["second_request_idx"] = sorted(int(v) for v in second["request_idx"])
    out["success_rate"] = float(raw["success_rate"].iloc[0])
    decided = None
    verdict = None
    if not gate_ok:
        verdict, decided = False, "median_completions_per_min"
    elif len(first) == 0 or len(second) == 0:
        verdict, decided = False, "filter_split"   # the original raises IndexError here
    elif (first["success_rate"] < threshold).any() or (second["success_rate"] < threshold).any():
        verdict, decided = False, "success_rate"
    if len(first) and len(second):
        x = first["complete_response_time"].dropna().values
        y = second["complete_response_time"].dropna().values
        res = stats.ttest_ind(x, y, equal_var=False, nan_policy="omit")
        p = float(res.pvalue)
        out.update(t=num(res.statistic), df=num(res.df), p_value=num(p),
                   cohens_d=num(cohens_d(x, y)))
        if verdict is None:
            if p >= 0.1:
                verdict, decided = True, "welch_t_test"
            else:
                b, lo, hi = bootstrap_mean_diff(x, y)
                out.update(boot_diff=b, boot_ci_low=lo, boot_ci_high=hi)
                verdict, decided = b > 0, "bootstrap_mean_diff"
    out.update(verdict=bool(verdict), deciding_rule=decided)
    return out


# ---------------------------------------------------------------- stats reference

def stats_reference():
    rng = np.random.default_rng(7)
    pairs = {
        "normal_equal": (rng.normal(100, 10, 50), rng.normal(100, 10, 60)),
        "normal_shifted": (rng.normal(100, 10, 40), rng.normal(106, 15, 35)),
        "unequal_sizes": (rng.normal(2400, 300, 7), rng.normal(2600, 900, 300)),
        "tiny": (np.array([1.0, 2.0]), np.array([3.0, 5.0, 4.0])),
        "integers": (np.array([1000., 1001, 999, 1000, 1002]), np.array([1000., 1000, 1001, 998])),
        "constant_different": (np.array([5.0, 5, 5]), np.array([6.0, 6, 6])),
        "constant_identical": (np.array([5.0, 5, 5]), np.array([5.0, 5, 5])),
        "single": (np.array([5.0]), np.array([6.0, 7, 8])),
        "huge_t": (rng.normal(100, 1, 200), rng.normal(130, 1, 200)),
    }
    welch = []
    for name, (x, y) in pairs.items():
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = stats.ttest_ind(x, y, equal_var=False)
            d = cohens_d(x, y) if len(x) + len(y) > 2 else float("nan")
        welch.append({"name": name, "x": list(map(float, x)), "y": list(map(float, y)),
                      "t": num(r.statistic), "df": num(r.df), "p": num(r.pvalue),
                      "cohens_d": num(d)})
    boot_x = rng.normal(100, 10, 37)
    boot_y = rng.normal(103, 12, 41)
    b, lo, hi = bootstrap_mean_diff(boot_x, boot_y, n_boot=2000, seed=42)
    gen = np.random.default_rng(42)
    raw = [int(v) for v in gen.bit_generator.random_raw(5)]
    gen = np.random.default_rng(42)
    draws = [int(v) for v in gen.choice(np.arange(1000), size=20, replace=True)]
    pct_data = list(map(float, rng.normal(0, 1, 11)))
    return {
        "scipy_version": scipy.__version__, "numpy_version": np.__version__,
        "welch": welch,
        "bootstrap": {"x": list(map(float, boot_x)), "y": list(map(float, boot_y)),
                      "n_boot": 2000, "seed": 42, "mean_diff": b, "ci_low": lo, "ci_high": hi},
        "pcg64_seed42_raw": [str(v) for v in raw],
        "choice_seed42_1000": draws,
        "percentile": {"data": pct_data,
                       "q": [0, 2.5, 10, 50, 90, 97.5, 99, 100],
                       "values": [float(np.percentile(pct_data, q))
                                  for q in [0, 2.5, 10, 50, 90, 97.5, 99, 100]]},
        "t_quantile": [{"df": df, "confidence": c,
                        "t": float(stats.t.ppf(0.5 + c / 2, df))}
                       for df, c in [(3, 0.9), (8, 0.9), (8, 0.99), (57.3, 0.95)]],
    }


def main():
    results = []
    for case in CASES:
        path = make_case(case["name"], case["req_min"], case["duration_s"], case["latency"],
                         case.get("success"), seed=case["seed"],
                         rate_factor=case.get("rate_factor", 1.0),
                         legacy_header=case.get("legacy_header", False))
        r = evaluate_case(case, path)
        results.append(r)
        print(f'{r["name"]:22s} rows={r["rows"]:5d} verdict={r["verdict"]!s:5s} '
              f'by {r["deciding_rule"]:28s} p={r.get("p_value")}')
    with open(os.path.join(HERE, "most_reference.json"), "w") as f:
        json.dump({"generated_by": "make_reference.py", "scipy_version": scipy.__version__,
                   "numpy_version": np.__version__, "pandas_version": pd.__version__,
                   "cases": results}, f, indent=1)
    with open(os.path.join(HERE, "stats_reference.json"), "w") as f:
        json.dump(stats_reference(), f, indent=1)


if __name__ == "__main__":
    main()
