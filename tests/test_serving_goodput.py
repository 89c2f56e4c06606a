"""Goodput (serving/goodput.py): requests meeting every objective, counted by hand from the
per-request records, and the objectives' parsing (vLLM's --goodput KEY:VALUE pairs in ms)."""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.cli import main
from tensor_cast.errors import TensorCastError
from tensor_cast.serving.goodput import parse_slo

MODEL = "Qwen/Qwen3-0.6B"
SMALL = {"device": "h100-sxm", "num_hidden_layers": 2}


@pytest.fixture(scope="module")
def loaded():
    # an open loop near capacity: TTFT and TPOT spread, so objectives split the requests
    return tensor_cast.simulate(MODEL, rate=400.0, num_requests=300, isl=512, osl=64, range_ratio=0.5, **SMALL)


def test_goodput_counts_the_requests_within_every_objective(loaded):
    ttfts = sorted(r.ttft_s for r in loaded.requests)
    tpots = sorted(r.tpot_s for r in loaded.requests)
    ttft_ms, tpot_ms = ttfts[len(ttfts) // 2] * 1e3, tpots[3 * len(tpots) // 4] * 1e3
    by_hand = sum(1 for r in loaded.requests if r.ttft_s * 1e3 <= ttft_ms and r.tpot_s * 1e3 <= tpot_ms)
    assert 0 < by_hand < len(loaded.requests)
    g = loaded.goodput(f"ttft:{ttft_ms!r} tpot:{tpot_ms!r}")
    assert (g.good, g.total) == (by_hand, 300)
    assert g.requests_per_s == pytest.approx(by_hand / loaded.duration_s)
    assert g.share == pytest.approx(by_hand / 300)
    # one objective alone: at the median TTFT, (at least) half the requests meet it
    assert loaded.goodput({"ttft": ttft_ms}).good >= 150
    # the same objectives as a mapping or as pairs
    assert loaded.goodput({"ttft": ttft_ms, "tpot": tpot_ms}) == g


def test_an_objective_at_the_slowest_request_keeps_every_request(loaded):
    slowest = max(r.e2e_s for r in loaded.requests) * 1e3
    assert loaded.goodput([f"e2el:{slowest!r}"]).good == 300
    assert loaded.goodput([f"e2el:{slowest * 0.999999!r}"]).good == 299


@pytest.mark.parametrize("given, message", [
    (["ttfx:300"], "unknown goodput metric 'ttfx'; accepted: ttft, tpot, e2el"),
    (["ttft=300"], "is not KEY:VALUE"),
    (["ttft:0"], "must be a number of milliseconds > 0"),
    (["ttft:abc"], "must be a number of milliseconds > 0"),
    (["ttft:nan"], "must be a number of milliseconds > 0"),
    (["ttft:300", "ttft:200"], "given twice"),
    ([], "at least one objective"),
])
def test_bad_objectives_are_named(given, message):
    with pytest.raises(TensorCastError, match=message):
        parse_slo(given)


def test_cli_prints_and_writes_the_goodput(tmp_path, capsys):
    out = tmp_path / "r.json"
    args = ["serve", MODEL, "--device", "h100-sxm", "--num-hidden-layers", "2", "--isl", "128", "--osl", "16"]
    assert main([*args, "--concurrency", "4", "--goodput", "ttft:1000", "e2el:5000", "--json", str(out)]) == 0
    assert "goodput: 40 of 40 requests (100.0%) met TTFT <= 1000 ms and E2EL <= 5000 ms" in capsys.readouterr().out
    data = json.loads(out.read_text())
    assert data["goodput"]["good"] == 40 and data["goodput"]["slo_ms"] == {"ttft": 1000.0, "e2el": 5000.0}
    assert main([*args, "--concurrency", "1,4", "--goodput", "tpot:1e-9"]) == 0
    text = capsys.readouterr().out
    assert "in SLO" in text and "goodput req/s" in text and "0.0%" in text
    assert main([*args, "--concurrency", "4", "--goodput", "tpot"]) == 2
    assert "is not KEY:VALUE" in capsys.readouterr().err
