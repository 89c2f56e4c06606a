"""Load sweeps (serving/sweep.py): every level is the single run at that load, overloaded open-loop
levels are marked, bad sweeps are one-line errors (API and CLI)."""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import TensorCastError

MODEL = "Qwen/Qwen3-0.6B"
SMALL = {"device": "h100-sxm", "num_hidden_layers": 2}


def test_each_level_is_the_single_run_at_that_load():
    sweep = tensor_cast.simulate_sweep(MODEL, concurrency=[2, 8], isl=256, osl=32, **SMALL)
    assert sweep.kind == "concurrency" and sweep.values == [2, 8]
    for c, level in zip((2, 8), sweep.levels, strict=True):
        alone = tensor_cast.simulate(MODEL, concurrency=c, isl=256, osl=32, **SMALL)
        assert level.to_json(requests=True) == alone.to_json(requests=True)
    rows = sweep.rows()
    assert [r["concurrency"] for r in rows] == [2, 8]
    assert rows[1]["mean_tpot_s"] == sweep.levels[1].mean_tpot_s
    assert rows[1]["output_tokens_per_s_per_gpu"] == sweep.levels[1].output_tokens_per_s_per_gpu
    table = sweep.table().splitlines()
    assert len(table) == 2 + 2 and table[0].split()[0] == "clients"


def test_an_open_loop_level_beyond_capacity_is_marked_overloaded():
    sweep = tensor_cast.simulate_sweep(MODEL, rate=[0.5, 10_000.0], num_requests=200, isl=256, osl=64, **SMALL)
    calm, flooded = sweep.levels
    assert not calm.overloaded and flooded.overloaded
    # the rule, checked by hand on the flooded level: at the last arrival >= 10 % (and >= 10) still wait
    last = max(r.arrival_s for r in flooded.requests)
    waiting = sum(1 for r in flooded.requests if r.arrival_s + r.ttft_s > last)
    assert waiting >= max(10, 0.1 * len(flooded.requests))
    assert "10000 *" in sweep.table() and "arrivals outpaced" in sweep.summary()
    closed = tensor_cast.simulate(MODEL, concurrency=4, isl=256, osl=16, **SMALL)
    assert not closed.overloaded  # a closed loop never outpaces its server


@pytest.mark.parametrize("kwargs, message", [
    ({}, "exactly one of concurrency"),
    ({"concurrency": [2], "rate": [1.0]}, "exactly one of concurrency"),
    ({"concurrency": []}, "non-empty list"),
    ({"concurrency": 4}, "non-empty list"),
    ({"concurrency": [2, 2]}, "levels repeat"),
    ({"rate": [1.0], "trace": "t.jsonl"}, "a trace fixes its own arrivals"),
    ({"rate": [1.0, -1.0]}, "rate must be a number of requests per second > 0, got -1.0"),
])
def test_bad_sweeps_are_named(kwargs, message, monkeypatch):
    import tensor_cast.serving.api as api

    monkeypatch.setattr(api, "simulate", lambda *a, **k: pytest.fail("a level ran before every level was checked"))
    with pytest.raises(TensorCastError, match=message):
        tensor_cast.simulate_sweep(MODEL, isl=64, osl=8, **SMALL, **kwargs)


def test_cli_sweep_prints_a_table_and_writes_every_level(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    args = ["serve", MODEL, "--device", "h100-sxm", "--num-hidden-layers", "2", "--isl", "128", "--osl", "16"]
    assert main([*args, "--concurrency", "1,4", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "sweep over concurrency: 1, 4" in text
    data = json.loads(out.read_text())
    assert data["values"] == [1, 4] and len(data["levels"]) == 2
    assert data["levels"][1]["workload"]["concurrency"] == 4 and len(data["levels"][1]["requests"]) == 40


def test_cli_sweep_with_a_one_run_output_is_refused_before_anything_is_written(tmp_path, capsys):
    trace = tmp_path / "steps.json"
    args = ["serve", MODEL, "--device", "h100-sxm", "--num-hidden-layers", "2", "--isl", "128", "--osl", "16"]
    assert main([*args, "--rate", "1,2", "--trace-out", str(trace)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--trace-out takes one run" in err[0] and "one --rate value" in err[0]
    assert not trace.exists()
    assert main([*args, "--concurrency", "1,,4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'1,,4' has an empty value" in err[0]
