"""Frontier models at full size, end to end (MLA / linear attention with their MoE layers): layer
structure of the costed graph, and DeepSeek-V3's decode FLOPs per token from its active parameters.
"""

from __future__ import annotations

from collections import Counter

import pytest

import tensor_cast
from tensor_cast.models import registry

V3 = registry.lookup("deepseek-ai/DeepSeek-V3").config


@pytest.fixture(scope="module")
def deepseek_v3():
    return tensor_cast.analyze("deepseek-ai/DeepSeek-V3", device="h100", symbolic=True)


def by_layer(report, op):
    return sorted(r.layer for r in report.ops if r.op == op)


def test_deepseek_v3_structure(deepseek_v3):
    point = deepseek_v3.evaluate(batch_size=16, query_len=1, context_len=4096)
    assert by_layer(point, "tensor_cast.mla_attention") == list(range(61))
    assert by_layer(point, "tensor_cast.moe") == list(range(3, 61))  # one per MoE layer: 58
    ops = Counter(r.op for r in point.ops)
    assert ops["topk"] == ops["_grouped_mm"] == ops["tensor_cast.attention"] == 0
    dense_mlp = [r for r in point.ops if r.layer in (0, 1, 2) and ".mlp" in r.module]
    assert [r.kind for r in dense_mlp if r.kind == "gemm"] == ["gemm"] * 6  # gate+up, down in each: dense
    assert not [r for r in dense_mlp if r.kind == "moe"]


def active_gemm_weights(c: dict) -> int:
    """GEMM weights one token multiplies by, from named dimensions: the MLA projections (kv_b_proj
    as the absorbed W_UK / W_UV), dense MLPs, the router, top-k routed + shared experts, lm_head."""
    h, heads, layers, dense = c["hidden_size"], c["num_attention_heads"], c["num_hidden_layers"], \
        c["first_k_dense_replace"]
    q_lora, rank, rope, nope, v = (c[k] for k in ("q_lora_rank", "kv_lora_rank", "qk_rope_head_dim",
                                                  "qk_nope_head_dim", "v_head_dim"))
    attention = h * q_lora + q_lora * heads * (nope + rope) + h * (rank + rope) + rank * heads * (nope + v) \
        + heads * v * h
    expert = 3 * h * c["moe_intermediate_size"]
    moe = c["n_routed_experts"] * h + (c["num_experts_per_tok"] + c["n_shared_experts"]) * expert
    return layers * attention + dense * 3 * h * c["intermediate_size"] + (layers - dense) * moe \
        + c["vocab_size"] * h


def test_deepseek_v3_decode_flops_per_token(deepseek_v3):
    """Decode: every GEMM weight a token uses is used once per token (2 FLOPs per weight, the
    embedding gathered instead), plus attention over the latent cache (absorbed form)."""
    batch, context = 64, 4096
    point = deepseek_v3.evaluate(batch_size=batch, query_len=1, context_len=context)
    heads, layers = V3["num_attention_heads"], V3["num_hidden_layers"]
    rank, rope = V3["kv_lora_rank"], V3["qk_rope_head_dim"]
    gemm = 2 * active_gemm_weights(V3)
    attention = layers * 2 * heads * (context + 1) * (2 * rank + rope)  # q·latent, q_rope·k_rope, p·latent
    tensor_core = sum(f for precision, f in point.flops_by_precision.items() if precision != "vector")
    assert tensor_core / batch == pytest.approx(gemm + attention, rel=1e-3)  # fp8 GEMMs (the checkpoint's), bf16 attention
    assert point.total_flops / batch == pytest.approx(gemm + attention, rel=0.02)


def test_deepseek_v3_mtp_costs_one_more_moe_layer():
    point = tensor_cast.analyze("deepseek-ai/DeepSeek-V3", device="h100", batch_size=16, query_len=1,
                                context_len=4096, mtp=1)
    ops = Counter(r.op for r in point.ops)
    assert ops["tensor_cast.moe"] == 59 and ops["tensor_cast.mla_attention"] == 62
    assert [r.module for r in point.ops if r.op == "tensor_cast.moe" and r.layer is None] == ["mtp.0.layers.0.mlp"]


def test_kimi_k2_structure():
    point = tensor_cast.analyze("moonshotai/Kimi-K2-Instruct", device="h100", batch_size=8, query_len=1,
                                context_len=1024)
    assert by_layer(point, "tensor_cast.moe") == list(range(1, 61))
    assert by_layer(point, "tensor_cast.mla_attention") == list(range(61))


def test_qwen3_next_structure():
    point = tensor_cast.analyze("Qwen/Qwen3-Next-80B-A3B-Instruct", device="h100", batch_size=8, query_len=1,
                                context_len=1024)
    full = [i for i in range(48) if (i + 1) % 4 == 0]
    assert by_layer(point, "tensor_cast.attention") == full
    assert by_layer(point, "tensor_cast.gated_delta_net") == [i for i in range(48) if i not in full]
    assert by_layer(point, "tensor_cast.moe") == list(range(48))
