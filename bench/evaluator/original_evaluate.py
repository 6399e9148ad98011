#!/usr/bin/env python3
"""Times the original tool's evaluation (early gate, split, evaluate with its bootstrap) on
output.csv files, using the re-implementation in tests/data/evaluator/make_reference.py.
Files larger than 200,000 rows are skipped: the original's bootstrap loop takes minutes there."""
import importlib.util
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "make_reference", os.path.join(HERE, "..", "..", "tests", "data", "evaluator", "make_reference.py"))
ref = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ref)

print(f"{'mode':8s} {'shape':9s} {'records':>9s} {'seconds':>10s}  verdict")
for path in sys.argv[1:]:
    shape, n = os.path.basename(path)[:-4].rsplit("_", 1)
    n = int(n)
    if n > 200_000:
        print(f"{'original':8s} {shape:9s} {n:9d} {'skipped':>10s}")
        continue
    case = {"name": shape, "req_min": n / 20, "filter_buffer_s": 120}  # as evaluator_bench.cc
    start = time.perf_counter()
    r = ref.evaluate_case(case, path)
    secs = time.perf_counter() - start
    print(f"{'original':8s} {shape:9s} {n:9d} {secs:10.4f}  {r['verdict']} by {r['deciding_rule']}",
          flush=True)
