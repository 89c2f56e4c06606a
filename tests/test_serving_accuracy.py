"""The measured-accuracy line of serving reports (serving/accuracy.py): the packaged table's
consistency, the summary script's groups computed by hand, and the lookup's three cases."""

from __future__ import annotations

import math

import pytest
from benchmark_modules import benchmarks

import tensor_cast
from tensor_cast.serving import accuracy
from tensor_cast.serving.accuracy import AccuracyGroup, AccuracyTable, accuracy_note


def test_the_packaged_table_is_consistent():
    table = accuracy.load_table()
    assert table.measured_with and table.groups
    assert sum(g.rows for g in table.groups) == table.overall["rows"]
    families = set(accuracy.FAMILY_OF_MODEL_TYPE.values())
    systems = set(accuracy.SYSTEM_OF_PROFILE.values())
    for g in table.groups:
        assert g.family in families and g.system in systems, g
        assert g.mode in ("agg", "disagg") and g.engine in ("vllm", "sglang", "trtllm")
        assert g.rows >= 1 and g.models and "?" not in g.models
        for value in (g.tpot_mae, g.ttft_mae):
            assert math.isfinite(value) and value >= 0
        assert g.tpot_ratio > 0 and g.ttft_ratio > 0
    # the all-rows error is the rows-weighted mean of the groups' errors
    for key in ("tpot_mae", "ttft_mae"):
        weighted = sum(getattr(g, key) * g.rows for g in table.groups) / table.overall["rows"]
        assert weighted == pytest.approx(table.overall[key], rel=1e-9)


def test_the_summary_scripts_groups_by_hand():
    (summary,) = benchmarks("serving_fidelity_summary")

    def row(rid, system, fam, pt, mt, pf, mf):  # predicted / measured TPOT and TTFT
        return {"id": rid, "system": system, "engine": "vllm", "family": fam, "mode": "agg", "split": "held-out",
                "pred_tpot_s": pt, "meas_tpot_s": mt, "pred_ttft_s": pf, "meas_ttft_s": mf,
                "tpot_err": abs(pt - mt) / mt, "ttft_err": abs(pf - mf) / mf}

    rows = [row("a", "b200_sxm", "Llama", 9.0, 10.0, 0.5, 1.0), row("b", "b200_sxm", "Llama", 12.0, 10.0, 3.0, 2.0),
            row("c", "h100_sxm", "Llama", 10.0, 10.0, 1.0, 1.0)]
    out = summary.package_table({r["id"]: {k: str(v) for k, v in r.items()} for r in rows},
                                {"a": "m/A", "b": "m/B", "c": "m/A"}, "test")
    b200 = next(g for g in out["groups"] if g["system"] == "b200_sxm")
    assert b200["rows"] == 2 and b200["models"] == ["m/A", "m/B"]
    assert b200["tpot_mae"] == pytest.approx((0.1 + 0.2) / 2) and b200["ttft_mae"] == pytest.approx((0.5 + 0.5) / 2)
    assert b200["tpot_ratio"] == pytest.approx((0.9 + 1.2) / 2) and b200["ttft_ratio"] == pytest.approx((0.5 + 1.5) / 2)
    assert out["overall"] == {"rows": 3, "tpot_mae": pytest.approx(0.1), "ttft_mae": pytest.approx(1 / 3)}


@pytest.fixture
def small_table(monkeypatch):
    group = AccuracyGroup("b200_sxm", "vllm", "Llama", "agg", 10, "held-out", 0.067, 0.135, 1.02, 0.93,
                          ("meta-llama/Llama-3.3-70B-Instruct",))
    table = AccuracyTable("commit abc", {"rows": 207, "tpot_mae": 0.123, "ttft_mae": 0.276}, (group,))
    monkeypatch.setattr(accuracy, "load_table", lambda: table)


def test_the_lookup_names_the_group_the_family_elsewhere_or_the_whole(small_table):
    exact = accuracy_note("llama", "b200", "vllm", "agg")
    assert exact.startswith("measured accuracy on similar runs: vllm Llama agg on b200_sxm, 10 measured runs")
    assert "TPOT mean abs error 6.7% (median predicted/measured 1.02), TTFT 13.5% (0.93)" in exact
    assert "held out from every fit" in exact and "commit abc" in exact
    elsewhere = accuracy_note("llama", "h200", "vllm", "agg")
    assert elsewhere.startswith("no measured runs of vllm Llama agg on h200 to check against; on other devices:")
    assert "b200_sxm" in elsewhere
    nothing = accuracy_note("gemma3", "h100-sxm", "vllm", "agg")
    assert "no measured runs of model_type 'gemma3'" in nothing and "TPOT mean abs error 12.3%, TTFT 27.6%" in nothing
    other_engine = accuracy_note("llama", "b200", "sglang", "agg")
    assert other_engine.startswith("no measured runs of Llama agg under sglang to check against; under other engines:")
    assert "vllm Llama agg on b200_sxm" in other_engine
    assert "the Llama family" in accuracy_note("llama", "b200", "sglang", "disagg")


def test_a_serving_report_carries_the_line():
    rep = tensor_cast.simulate("Qwen/Qwen3-0.6B", device="h100-sxm", concurrency=2, isl=64, osl=8,
                               num_hidden_layers=1)
    assert any(n.startswith(("measured accuracy on similar runs:", "no measured runs of")) for n in rep.notes)


def test_the_lookup_uses_the_family_the_config_writes():
    """Kimi-K2's config writes `kimi_k2` and is built as DeepSeek-V3: its reports quote the measured Kimi rows
    (the packaged table has vLLM Kimi agg rows on B200), not DeepSeek's."""
    from tensor_cast.models.loader import load_spec

    spec = load_spec("moonshotai/Kimi-K2-Instruct")
    assert (spec.model_type, spec.written_model_type, spec.family_model_type) == ("deepseek_v3", "kimi_k2", "kimi_k2")
    assert load_spec("inclusionAI/Ling-mini-2.0").family_model_type == "bailing_moe"
    rep = tensor_cast.simulate("moonshotai/Kimi-K2-Instruct", device="b200", engine="vllm", concurrency=2, isl=64,
                               osl=4, num_hidden_layers=2, tp=8)
    line = next(n for n in rep.notes if n.startswith(("measured accuracy on similar runs:", "no measured runs of")))
    assert line.startswith("measured accuracy on similar runs: vllm Kimi agg on b200_sxm"), line
