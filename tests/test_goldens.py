"""Golden cost-replay snapshots: a refactor must leave every case's report unchanged.

Each case below (a model, a device, a deployment, two shape points) is analyzed and its report
(`Report.to_dict()`: totals, memory, fit, pipeline, speculative decoding, free ops, and the
per-op rows of the prologue, of the first real layer of each representative layer and of the
epilogue, the rest being repeats) is compared with `tests/goldens/<case>.json`, value by value:
strings, ints and structure exactly, floats to 1e-9 relative (rounding only).

These are not accuracy claims: the snapshots were produced by the code itself and prove only that
a change did not move a number. A modelling change regenerates them and says why in its commit:

    TENSOR_CAST_REGEN_GOLDENS=1 python -m pytest tests/test_goldens.py

The cases cover what the pipeline rewrites: dense, MoE (uniform and skewed routing), MLA,
hybrid linear attention, sliding window, TP, EP + attention DP, PP, FP8 weights and KV cache,
MXFP4 experts and MTP (gpt-oss also covers sliding-window attention). Full depth costs nothing extra to trace (one layer per kind is traced).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import pytest

import tensor_cast

GOLDENS = Path(__file__).parent / "goldens"
REGENERATE = os.environ.get("TENSOR_CAST_REGEN_GOLDENS") == "1"
REL_TOL = 1e-9

PREFILL, DECODE = (1, 2048, 0), (64, 1, 4096)
# case -> (model, device, analyze keywords, points (batch, query, context))
CASES: dict[str, tuple[str, str, dict[str, Any], tuple[tuple[int, int, int], ...]]] = {
    "dense_llama3_8b": ("meta-llama/Llama-3.1-8B", "h100-sxm", {}, (PREFILL, DECODE)),
    "moe_qwen3_30b": ("Qwen/Qwen3-30B-A3B", "h100-sxm", {}, ((4, 512, 0), (32, 1, 2048))),
    "moe_skew_qwen3_30b": ("Qwen/Qwen3-30B-A3B", "h100-sxm", {"moe_skew": 1.0}, ((32, 1, 2048),)),
    "mla_deepseek_v3_tp8": ("deepseek-ai/DeepSeek-V3", "h200", {"tp": 8}, (PREFILL, DECODE)),
    "hybrid_qwen3_next": ("Qwen/Qwen3-Next-80B-A3B-Instruct", "h100-sxm", {}, (PREFILL, DECODE)),
    "tp_llama3_70b_tp4": ("meta-llama/Llama-3.1-70B", "h100-sxm", {"tp": 4}, (PREFILL, DECODE)),
    "ep_dp_mtp_deepseek_v3": ("deepseek-ai/DeepSeek-V3", "h200", {"dp": 8, "ep": 8, "mtp": 1},
                              ((8, 1024, 0), (256, 1, 4096))),
    "pp_qwen3_8b_pp2_tp2": ("Qwen/Qwen3-8B", "h100-sxm", {"pp": 2, "tp": 2}, (PREFILL, DECODE)),
    "fp8_llama3_8b": ("meta-llama/Llama-3.1-8B", "h100-sxm", {"quant": "fp8", "kv_cache_dtype": "fp8"},
                      (PREFILL, DECODE)),
    "mxfp4_gpt_oss_20b": ("openai/gpt-oss-20b", "b200", {}, (PREFILL, DECODE)),
    "ep_skew_qwen3_30b_tp4_ep4": ("Qwen/Qwen3-30B-A3B", "h100-sxm", {"tp": 4, "ep": 4, "moe_skew": 0.8},
                                  ((32, 1, 2048),)),
}


def snapshot(model: str, device: str, options: dict[str, Any], points: tuple[tuple[int, int, int], ...]) -> dict:
    """The report of every point, with per-op rows of the first real layer of each representative one."""
    out: dict[str, Any] = {}
    for batch, query, context in points:
        report = tensor_cast.analyze(model, device=device, batch_size=batch, query_len=query, context_len=context,
                                     **options)
        data = report.to_dict()
        first = {indices[0] for indices in report.context.layer_indices}
        data["ops"] = [row for row in data["ops"] if row["layer"] is None or row["layer"] in first]
        out[f"{batch}x{query}@{context}"] = data
    return out


def _diff(expected: Any, actual: Any, where: str = "") -> list[str]:
    if isinstance(expected, dict) and isinstance(actual, dict):
        if set(expected) != set(actual):
            return [f"{where}: keys {sorted(set(expected) ^ set(actual))} differ"]
        return [d for k in expected for d in _diff(expected[k], actual[k], f"{where}.{k}")]
    if isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            return [f"{where}: {len(expected)} items expected, {len(actual)} got"]
        return [d for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for d in _diff(e, a, f"{where}[{i}]")]
    if isinstance(expected, float) and isinstance(actual, (int, float)) and not isinstance(actual, bool):
        if math.isclose(expected, actual, rel_tol=REL_TOL, abs_tol=1e-300):
            return []
    elif expected == actual and type(expected) is type(actual):
        return []
    return [f"{where}: expected {expected!r}, got {actual!r}"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden(case: str) -> None:
    path = GOLDENS / f"{case}.json"
    # the JSON round trip makes tuples lists, as in the stored file
    actual = json.loads(json.dumps(snapshot(*CASES[case])))
    if REGENERATE:
        path.write_text(json.dumps(actual, indent=1, sort_keys=True) + "\n")
        pytest.skip(f"regenerated {path.name}")
    assert path.exists(), f"no golden for {case}: run with TENSOR_CAST_REGEN_GOLDENS=1 and commit {path}"
    differences = _diff(json.loads(path.read_text()), actual)
    assert not differences, f"{case}: {len(differences)} value(s) moved, e.g.\n" + "\n".join(differences[:20])


def test_goldens_have_no_stray_files() -> None:
    assert {p.stem for p in GOLDENS.glob("*.json")} <= set(CASES)


def test_diff_catches_a_moved_number() -> None:
    assert _diff({"a": [1.0, "x"]}, {"a": [1.0 + 1e-6, "x"]})
    assert not _diff({"a": [1.0, "x"]}, {"a": [1.0 + 1e-13, "x"]})
    assert _diff({"a": 1}, {"a": 1.0}) and _diff({"a": "x"}, {"b": "x"})
