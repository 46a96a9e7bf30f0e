"""bench.py's scoring comparison runs and agrees with the reference loop (no timing assertions)."""
import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))


def test_scoring_benchmark_rows_agree_with_the_reference_loop():
    spec = importlib.util.spec_from_file_location("padim_bench", os.path.join(HERE, "..", "bench.py"))
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = bench.scoring_speed(quick=True)
    assert [r["what"].split(": ")[1].split(" ")[0] for r in rows] == ["reference", "batched", "same"]
    for r in rows:
        assert r["value"].endswith(" ms") and float(r["value"].split()[0]) > 0
    # eager and exported distances both equal the per-position numpy/scipy loop
    assert rows[1]["max_abs_diff"] < 1e-3
