"""Per-layer heterogeneity changes the traced graph and the cost of exactly the layers concerned."""

from __future__ import annotations

from collections import defaultdict

import pytest

import tensor_cast
from tensor_cast.errors import InvalidArgumentError

MODEL, DEVICE = "meta-llama/Llama-3.2-1B", "h100-sxm"
HIDDEN, INTER, LAYERS, HEADS, KV, HEAD_DIM = 2048, 8192, 16, 32, 8, 64


def by_layer(report, field):
    totals = defaultdict(float)
    for row in report.ops:
        totals[row.layer] += getattr(row, field)
    return totals


def test_intermediate_size_override_changes_exactly_that_layer():
    point = dict(batch_size=2, query_len=128)
    base = tensor_cast.analyze(MODEL, device=DEVICE, **point)
    wide = tensor_cast.analyze(MODEL, device=DEVICE, per_layer_config={3: {"intermediate_size": 3 * INTER}}, **point)
    base_flops, wide_flops = by_layer(base, "flops"), by_layer(wide, "flops")
    changed = {layer for layer in base_flops if base_flops[layer] != wide_flops[layer]}
    assert changed == {3}
    base_time, wide_time = by_layer(base, "time_s"), by_layer(wide, "time_s")
    assert {layer for layer in base_time if base_time[layer] != wide_time[layer]} == {3}
    tokens = 2 * 128
    extra_gemm = 2 * tokens * 3 * HIDDEN * (3 * INTER - INTER)  # gate, up, down GEMMs
    gemm = lambda report: sum(r.flops for r in report.ops if r.layer == 3 and r.kind == "gemm")  # noqa: E731
    assert gemm(wide) - gemm(base) == extra_gemm
    assert wide.num_parameters - base.num_parameters == 3 * HIDDEN * 2 * INTER


def test_skip_attention_removes_that_layers_attention():
    report = tensor_cast.analyze(MODEL, device=DEVICE, batch_size=1, query_len=64,
                                 per_layer_config={7: {"skip_attention": True}, "9": {"skip_mlp": True}})
    layers_with_attention = {r.layer for r in report.ops if r.kind == "attention"}
    assert layers_with_attention == set(range(LAYERS)) - {7}
    layers_with_mlp = {r.layer for r in report.ops if r.op == "tensor_cast.act_mul"}
    assert layers_with_mlp == set(range(LAYERS)) - {9}
    base = tensor_cast.analyze(MODEL, device=DEVICE, batch_size=1, query_len=64)
    attention_params = HIDDEN * HEADS * HEAD_DIM * 2 + HIDDEN * KV * HEAD_DIM * 2 + HIDDEN  # q,o,k,v + its norm
    mlp_params = 3 * HIDDEN * INTER + HIDDEN
    assert base.num_parameters - report.num_parameters == attention_params + mlp_params


def test_sliding_window_override_caps_that_layer_in_decode():
    window, context = 1024, 32_000
    report = tensor_cast.analyze(MODEL, device=DEVICE, batch_size=4, query_len=1, context_len=context,
                                 per_layer_config={0: {"sliding_window": window}})
    attention = {r.layer: r for r in report.ops if r.kind == "attention"}
    assert attention[0].flops * (context + 1) == pytest.approx(attention[1].flops * window, rel=1e-3)
    kv_per_token_layer = 2 * KV * HEAD_DIM * 2
    expected_kv = 4 * kv_per_token_layer * (window + (LAYERS - 1) * (context + 1))
    assert report.memory.kv_cache_bytes == expected_kv


def test_hf_layer_types_reach_the_attention_op():
    """Gemma 3: 5 of every 6 layers slide over 512 tokens; decode attention of those layers is capped."""
    report = tensor_cast.analyze("google/gemma-3-1b-it", device=DEVICE, batch_size=1, query_len=1, context_len=8191)
    flops = sorted({r.flops for r in report.ops if r.kind == "attention"})
    assert len(flops) == 2
    assert flops[1] / flops[0] == pytest.approx(8192 / 512, rel=1e-6)
    sliding = sum(1 for r in report.ops if r.kind == "attention" and r.flops == flops[0])
    assert sliding == 22  # gemma-3-1b: 26 layers, every 6th is global


def test_num_hidden_layers_override():
    report = tensor_cast.analyze(MODEL, device=DEVICE, batch_size=1, query_len=16, num_hidden_layers=4)
    assert {r.layer for r in report.ops if r.layer is not None} == {0, 1, 2, 3}


@pytest.mark.parametrize("override, message", [
    ({16: {"skip_mlp": True}}, r"names layer 16 but .* has 16 layers \(valid: 0..15\)"),
    ({0: {"n_embd": 4}}, r"unknown field 'n_embd'; accepted: intermediate_size"),
    ({0: {"intermediate_size": -4}}, "intermediate_size must be a positive integer"),
    ({0: {"num_experts": 8}}, "applies to MoE layers only"),
])
def test_bad_overrides_are_clear_errors(override, message):
    with pytest.raises(InvalidArgumentError, match=message):
        tensor_cast.analyze(MODEL, device=DEVICE, batch_size=1, query_len=1, per_layer_config=override)
