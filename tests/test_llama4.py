"""Llama 4 (Scout, Maverick): its text decoder as the MoE adapter's Llama4 row with chunked local
attention and the routed-experts swap. Parameters against transformers' own text model on meta (a
second route) and by hand; the KV cache by hand (RoPE layers hold their current 8,192-token chunk,
NoPE layers everything); the chunked attention count against a brute-force sum; the graph's
structure (one MoE op per MoE layer, one rope per RoPE layer, the q/k norms fused); refusals."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast
from tensor_cast.backends.formulas.attention import attention_counts
from tensor_cast.cli import main
from tensor_cast.models import registry

SCOUT, MAVERICK = "meta-llama/Llama-4-Scout-17B-16E-Instruct", "meta-llama/Llama-4-Maverick-17B-128E-Instruct"


def text_config(model_id: str) -> dict:
    return dict(registry.lookup(model_id).config["text_config"])


def small_text(tmp_path, **fields):
    config = AutoConfig.for_model("llama4_text", num_hidden_layers=4, num_local_experts=4, **fields)
    data = config.to_dict()
    data["architectures"] = ["Llama4ForCausalLM"]
    (tmp_path / "config.json").write_text(json.dumps(data))
    return config


@pytest.mark.parametrize("step", [1, 2])
def test_parameters_against_transformers(tmp_path, step):
    config = small_text(tmp_path, interleave_moe_layer_step=step)
    with torch.device("meta"):
        reference = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)
    assert report.num_parameters == reference


def by_hand(c: dict) -> tuple[int, int]:
    """(total, active) of a Llama 4 text decoder: embeddings + untied head, per layer GQA attention and two
    norms, MoE layers (router E x H, E experts and one shared expert of width I) or dense SwiGLU layers of
    intermediate_size_mlp; active: less the input embedding (a lookup) and the E - k experts a token skips."""
    h, layers, heads, kv, d = (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"],
                               c["num_key_value_heads"], c["head_dim"])
    experts, width, step = c["num_local_experts"], c["intermediate_size"], c["interleave_moe_layer_step"]
    moe_layers = len(range(step - 1, layers, step))
    attention = h * heads * d + 2 * h * kv * d + heads * d * h + 2 * h
    expert = 3 * h * width
    total = (2 * c["vocab_size"] * h + layers * attention + moe_layers * (experts * h + (experts + 1) * expert)
             + (layers - moe_layers) * 3 * h * c["intermediate_size_mlp"] + h)
    active = total - c["vocab_size"] * h - moe_layers * (experts - c["num_experts_per_tok"]) * expert
    return total, active


@pytest.mark.parametrize("model_id, public_total", [(SCOUT, 109e9 - 0.455e9), (MAVERICK, 400e9)])
def test_full_size_parameters_kv_cache_by_hand(model_id, public_total):
    c = text_config(model_id)
    context = 10_000  # past the first chunk: RoPE layers hold 10,000 mod 8,192 + 1 = 1,809 tokens
    report = tensor_cast.analyze(model_id, device="h100", batch_size=2, query_len=1, context_len=context)
    total, active = by_hand(c)
    assert (report.num_parameters, report.active_parameters) == (total, active)
    assert report.num_parameters == pytest.approx(public_total, rel=0.01)
    assert report.active_parameters + c["vocab_size"] * c["hidden_size"] == pytest.approx(17e9, rel=0.02)  # card
    nope = c["num_hidden_layers"] // c["no_rope_layer_interval"]
    rope = c["num_hidden_layers"] - nope
    per_token_layer = 2 * c["num_key_value_heads"] * c["head_dim"] * 2  # K and V, bf16
    held = rope * (context % c["attention_chunk_size"] + 1) + nope * (context + 1)
    assert report.memory.kv_cache_bytes == 2 * held * per_token_layer


def test_maverick_structure():
    """MoE in every other layer (1, 3, ...), dense elsewhere; one rope op per RoPE layer (q and k together);
    NoPE layers (every 4th) have none; Maverick has no q/k norm."""
    c = text_config(MAVERICK)
    point = tensor_cast.analyze(MAVERICK, device="h100", batch_size=4, query_len=1, context_len=64)
    layers = range(c["num_hidden_layers"])
    by_op = {op: sorted(r.layer for r in point.ops if r.op == op)
             for op in ("tensor_cast.moe", "tensor_cast.rope", "tensor_cast.attention", "tensor_cast.routed_experts")}
    assert by_op == {"tensor_cast.moe": [i for i in layers if i % 2 == 1],
                     "tensor_cast.rope": [i for i in layers if (i + 1) % 4],
                     "tensor_cast.attention": list(layers), "tensor_cast.routed_experts": []}


def test_scout_qk_norms_are_fused():
    """Scout's weightless L2 q/k norm on its RoPE layers: one rms_norm op for q and one for k, besides the
    final norm; the layer norms are fused with the residual adds."""
    c = text_config(SCOUT)
    point = tensor_cast.analyze(SCOUT, device="h100", batch_size=4, query_len=1, context_len=64)
    rope_layers = c["num_hidden_layers"] - c["num_hidden_layers"] // c["no_rope_layer_interval"]
    assert sum(1 for r in point.ops if r.op == "tensor_cast.rms_norm") == 2 * rope_layers + 1
    assert not [r for r in point.ops if r.op in ("Tensor.pow", "rsqrt")]


@pytest.mark.parametrize("context, new", [(0, 1), (100, 1), (8191, 1), (8192, 1), (8000, 500), (0, 20000)])
def test_chunked_attention_counts_against_brute_force(context, new):
    chunk = 8192
    counts = attention_counts(batch=1, q_heads=1, kv_heads=1, q_len=new, context_len=context, head_dim=64,
                              v_head_dim=64, causal=True, window=0, precision="bf16", q_bytes=0, kv_itemsize=2,
                              out_bytes=0, chunk=chunk)
    pairs = sum(p % chunk + 1 for p in range(context, context + new))  # each query: its chunk's keys up to itself
    assert counts.flops["bf16"] == 2 * pairs * 128
    assert counts.state_bytes == ((context + new - 1) % chunk + 1) * 2 * 64 * 2


def test_chunked_attention_op_masks_other_chunks():
    """The op's reference: a query sees only its own chunk's keys (chunk 4 over 10 positions)."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    out = torch.ops.tensor_cast.attention(q, k, v, 0, 8 ** -0.5, True, 0, None, 4)
    pos = torch.arange(10)
    allowed = (pos[None, :] <= pos[:, None]) & (pos[None, :] // 4 == pos[:, None] // 4)
    scores = (q @ k.transpose(-1, -2) * 8 ** -0.5).masked_fill(~allowed, float("-inf"))
    expected = (torch.softmax(scores, -1) @ v).transpose(1, 2)
    torch.testing.assert_close(out, expected)


def test_tp8_splits_heads_and_experts():
    one = tensor_cast.analyze(SCOUT, device="h100", batch_size=4, query_len=1, context_len=1000)
    eight = tensor_cast.analyze(SCOUT, device="h100", batch_size=4, query_len=1, context_len=1000, tp=8)
    assert float(eight.memory.weights_bytes) == pytest.approx(float(one.memory.weights_bytes) / 8, rel=1e-3)
    assert float(eight.memory.kv_cache_bytes) == pytest.approx(float(one.memory.kv_cache_bytes) / 8)


def test_rope_without_chunked_attention_is_refused(tmp_path, capsys):
    """Without attention_chunk_size a RoPE and a NoPE layer are both full attention: not one computation."""
    small_text(tmp_path, attention_chunk_size=None)
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "layer 0 is RoPE with full attention; supported: RoPE layers with chunked attention" in err
    assert len(err.splitlines()) == 1
