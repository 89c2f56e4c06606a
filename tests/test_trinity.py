"""Arcee Trinity (`afmoe`): gated GQA with q/k norms and 3:1 sliding / global NoPE layers over a MoE
with sigmoid routing, an expert bias and a shared expert, the first layers dense.

Trinity Mini (registry, published config): parameters by hand = transformers' own modules (card:
26B total, 3B active), dense layers then one MoE op per layer, RoPE on the sliding layers only, the
attention output gate one fused sigmoid-and-multiply kernel per layer, the KV cache per kind by hand.
Trinity Large's shape (its published dimensions as given in a public port's tests: hidden 3072, 60
layers, 6 dense, 256 experts of 3072, top-4, 48 / 8 heads): parameters against the card (~400B, 13B
active).

Mini: hidden 2048, 32 layers (2 dense of 6144), 32 query / 4 KV heads of 128, 128 experts of 1024
(top-8) + 1 shared, vocab 200192, window 2048.
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig
from transformers_reference import transformers_parameters

import tensor_cast
from tensor_cast.models import registry

MODEL = "arcee-ai/Trinity-Mini"
HIDDEN, LAYERS, DENSE_LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 2048, 32, 2, 32, 4, 128, 200192
EXPERTS, TOP_K, EXPERT, DENSE, WINDOW = 128, 8, 1024, 6144, 2048
GLOBAL = {i for i in range(LAYERS) if (i + 1) % 4 == 0}
BATCH, CONTEXT = 8, 4096


@pytest.fixture(scope="module")
def point():
    return tensor_cast.analyze(MODEL, device="h200", batch_size=BATCH, query_len=1, context_len=CONTEXT)


def test_parameters_by_hand_and_against_transformers(point):
    attention = (HIDDEN * (2 * HEADS + 2 * KV_HEADS) * HEAD_DIM  # q, k, v and the output gate's projection
                 + HEADS * HEAD_DIM * HIDDEN + 2 * HEAD_DIM)  # o_proj, q / k norms
    expert = 3 * HIDDEN * EXPERT
    moe = EXPERTS * HIDDEN + EXPERTS + (EXPERTS + 1) * expert  # router, expert bias, routed + shared experts
    total = (LAYERS * (attention + 4 * HIDDEN) + DENSE_LAYERS * 3 * HIDDEN * DENSE + (LAYERS - DENSE_LAYERS) * moe
             + HIDDEN + 2 * VOCAB * HIDDEN)
    assert point.num_parameters == total
    fields = {k: v for k, v in registry.lookup(MODEL).config.items() if k != "model_type"}
    assert total == transformers_parameters(AutoConfig.for_model("afmoe", **fields))
    assert total == pytest.approx(registry.lookup(MODEL).public_parameters, rel=0.01)  # card: 26B
    active = total - (LAYERS - DENSE_LAYERS) * (EXPERTS - TOP_K) * expert - VOCAB * HIDDEN
    assert point.active_parameters == active
    assert active == pytest.approx(3e9, rel=0.03)  # card: 3B active


def test_layers_positions_and_gate(point):
    ops = point.ops
    assert sorted(r.layer for r in ops if r.op == "tensor_cast.moe") == list(range(DENSE_LAYERS, LAYERS))
    assert {r.layer for r in ops if r.op == "tensor_cast.rope"} == set(range(LAYERS)) - GLOBAL  # global: NoPE
    gates = [r for r in ops if r.op == "tensor_cast.act_mul" and r.module.endswith("self_attn")]
    assert len(gates) == LAYERS  # attention output * sigmoid(gate): one kernel per layer
    assert gates[0].bytes == 3 * BATCH * HEADS * HEAD_DIM * 2  # reads output and gate, writes the product (bf16)


def test_kv_cache_by_kind(point):
    per_token = KV_HEADS * 2 * HEAD_DIM * 2
    sliding = (LAYERS - len(GLOBAL)) * BATCH * WINDOW * per_token  # the window is full at 4096 tokens
    assert point.kv_cache_by_kind == {f"sliding({WINDOW})": sliding,
                                      "full": len(GLOBAL) * BATCH * (CONTEXT + 1) * per_token}


def test_trinity_large_shape_matches_the_card(tmp_path):
    config = dict(registry.lookup(MODEL).config, hidden_size=3072, intermediate_size=12288,
                  moe_intermediate_size=3072, num_attention_heads=48, num_dense_layers=6, num_experts=256,
                  num_experts_per_tok=4, num_hidden_layers=60, num_key_value_heads=8, sliding_window=4096,
                  layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 15)
    (tmp_path / "config.json").write_text(json.dumps(config))
    report = tensor_cast.analyze(str(tmp_path), device="h200", batch_size=1, query_len=1)
    assert report.num_parameters == pytest.approx(400e9, rel=0.01)  # card: ~400B (398.6B)
    assert report.active_parameters + VOCAB * 3072 == pytest.approx(13e9, rel=0.05)  # card: 13B active
