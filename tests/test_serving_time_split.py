"""Where a serving run's time goes (serving/time_split.py): the phase split, checked against the
run's own step records (a second route), and the typical steps, checked against `analyze` at the
point derived by hand from the workload."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.serving.time_split import decode_context

MODEL = "Qwen/Qwen3-0.6B"
SMALL = {"device": "h100-sxm", "num_hidden_layers": 2}


def by_phase(report):
    return {(s.pool, s.phase): s for s in report.time_split}


def test_phase_totals_match_the_step_records():
    rep = tensor_cast.simulate(MODEL, concurrency=8, num_requests=24, isl=512, osl=64, record_steps=True, **SMALL)
    split = by_phase(rep)
    assert set(split) == {("agg", "prompt"), ("agg", "decode")}
    prompt = [s for s in rep.step_records if s.prefill_tokens]
    decode = [s for s in rep.step_records if not s.prefill_tokens]
    assert split["agg", "prompt"].steps == sum(s.steps for s in prompt)
    assert split["agg", "decode"].steps == sum(s.steps for s in decode)
    assert split["agg", "prompt"].steps + split["agg", "decode"].steps == rep.steps
    assert split["agg", "prompt"].step_s == pytest.approx(sum(s.duration_s for s in prompt), rel=1e-12)
    assert split["agg", "decode"].step_s == pytest.approx(sum(s.duration_s for s in decode), rel=1e-12)
    assert split["agg", "prompt"].share + split["agg", "decode"].share == pytest.approx(1.0)


def test_typical_steps_are_analyze_at_the_workloads_mean_point():
    rep = tensor_cast.simulate(MODEL, concurrency=8, num_requests=24, isl=512, osl=64, **SMALL)
    split = by_phase(rep)
    decode = split["agg", "decode"].typical
    # fixed lengths: the 8 clients decode together in every decode-only step; a request's 64
    # tokens decode over contexts 512 .. 575, mean 512 + 63 / 2
    assert (decode.batch_size, decode.query_len, decode.context_len) == (8, 1, round(512 + 63 / 2))
    step = tensor_cast.analyze(MODEL, batch_size=8, query_len=1, context_len=round(512 + 63 / 2), **SMALL)
    assert decode.kernel_s == pytest.approx(float(step.total_time_s), rel=1e-9)
    assert sum(v for _, v in decode.kinds) == pytest.approx(decode.kernel_s, rel=1e-9)
    assert [v for _, v in decode.kinds] == sorted((v for _, v in decode.kinds), reverse=True)
    assert dict(decode.kinds)["attention"] > 0 and dict(decode.kinds)["gemm"] > 0
    prompt = split["agg", "prompt"].typical
    assert (prompt.batch_size, prompt.query_len, prompt.context_len) == (1, 512, 0)
    alone = tensor_cast.analyze(MODEL, batch_size=1, query_len=512, **SMALL)
    assert prompt.kernel_s == pytest.approx(float(alone.total_time_s), rel=1e-9)


def test_prefix_hits_are_the_typical_prompts_context():
    rep = tensor_cast.simulate(MODEL, concurrency=4, num_requests=12, isl=512, osl=16, prefix_hit_rate=0.5, **SMALL)
    prompt = by_phase(rep)["agg", "prompt"].typical
    hits = sum(r.prefix_hit_tokens for r in rep.requests) / len(rep.requests)
    assert hits > 0
    assert (prompt.query_len, prompt.context_len) == (round(512 - hits), round(hits))


def test_decode_context_weights_each_request_by_its_output():
    reqs = [SimpleNamespace(prompt=100, output=10), SimpleNamespace(prompt=0, output=1)]
    # contexts 100..109 (sum 1045) and 0: 1045 / 11 tokens
    assert decode_context(reqs) == pytest.approx(1045 / 11)
    assert decode_context([]) == 0.0


def test_disaggregated_pools_each_have_their_phase():
    rep = tensor_cast.simulate(MODEL, concurrency=4, num_requests=8, isl=256, osl=16,
                               disagg="prefill: 1x tp1; decode: 1x tp1", **SMALL)
    split = by_phase(rep)
    assert set(split) == {("prefill", "prompt"), ("decode", "decode")}
    assert split["prefill", "prompt"].share == split["decode", "decode"].share == 1.0


def test_summary_json_and_cli_carry_the_split(tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["serve", MODEL, "--device", "h100-sxm", "--num-hidden-layers", "2", "--concurrency", "4",
                 "--num-requests", "8", "--isl", "256", "--osl", "16", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "time: decode-only steps:" in text and "time: steps with prompt tokens:" in text
    data = json.loads(out.read_text())
    phases = {(s["pool"], s["phase"]) for s in data["time_split"]}
    assert phases == {("agg", "prompt"), ("agg", "decode")}
    typical = data["time_split"][0]["typical"]
    assert typical["kernel_s"] == pytest.approx(sum(v for _, v in typical["kinds"]))
