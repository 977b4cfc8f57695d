"""benchmarks/bench_retrieval_cost.py runs end to end (tiny model, tiny sizes; no timing is
checked) and its exact counts make sense."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import readpvla as rp


def test_bench_retrieval_cost_runs_on_the_tiny_model(capsys):
    path = Path(__file__).parents[1] / "benchmarks" / "bench_retrieval_cost.py"
    spec = importlib.util.spec_from_file_location("bench_retrieval_cost", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    rows = {r["method"]: r for r in bench.main(["--tiny", "--videos", "2", "--frames", "2",
                                                  "--steps", "1", "--warmup", "0"])}
    out = capsys.readouterr().out
    expected = {"Full", "LoRA", "Adapter", "READ"} | ({"RAP"} if "rap" in rp.peft.METHODS else set())
    assert set(rows) == expected
    if "rap" not in rp.peft.METHODS:
        assert "RAP: not available" in out
    full = rows["Full"]
    for name, r in rows.items():
        assert r["trainable"] > 0 and r["step_s"] > 0
        assert math.isclose(r["params_mb"], r["trainable"] * 4 / 2 ** 20)
        if name != "Full":  # PEFT trains less, keeps less and computes no more than Full
            assert r["trainable"] < full["trainable"] and r["memory_mb"] < full["memory_mb"]
            assert math.isnan(r["gflops"]) or r["gflops"] <= full["gflops"]
    assert "x Full" in out and "READ" in out
