"""Every registry model is traced and costed by some test; the ones no other test traces are
traced here at full depth and checked against numbers derived from their named dimensions.

Full depth costs what one layer does (each distinct layer kind is traced once), so the checks
can use the published layer counts. Dense models: prefill tensor-core FLOPs = GEMMs (2 per
weight per token, 1 per bias element, the lm_head on the last token only) + attention (2·(d + dv) per query-key pair
per head, causal, capped by a sliding window); decode KV cache = layers × B × cached tokens ×
KV heads × (d + dv) × 2 bytes; parameters and active parameters from the same dimensions.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

import tensor_cast
from tensor_cast.models import registry

# model_type -> (q/k/v bias, per-head q/k norm, norms per layer); Gemma 3 has four norms per layer
DENSE_FAMILY = {
    "llama": (False, False, 2),
    "mistral": (False, False, 2),
    "qwen2": (True, False, 2),
    "qwen3": (False, True, 2),
    "gemma3_text": (False, True, 4),
}
DENSE_HERE = ["Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-72B", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B", "Qwen/Qwen3-32B",
              "google/gemma-3-4b-it", "google/gemma-3-12b-it", "google/gemma-3-27b-it", "meta-llama/Llama-3.2-3B",
              "mistralai/Mistral-7B-v0.3"]
HYBRID_HERE = ["Qwen/Qwen3.5-397B-A17B"]
PREFILL, DECODE_BATCH, DECODE_CONTEXT = 2048, 8, 4096


def text_config(model_id: str) -> dict:
    entry = registry.lookup(model_id)
    c = dict(entry.config.get("text_config") or entry.config)
    c.setdefault("tie_word_embeddings", entry.config.get("tie_word_embeddings", c["model_type"] == "gemma3_text"))
    return c


def windows(c: dict) -> list[int]:
    """Each layer's sliding window (0: full attention), from the config's own fields."""
    layers = c["num_hidden_layers"]
    if c["model_type"] == "gemma3_text":  # every `sliding_window_pattern`-th layer is global
        return [0 if (i + 1) % c["sliding_window_pattern"] == 0 else c["sliding_window"] for i in range(layers)]
    if c.get("use_sliding_window") is False or not c.get("sliding_window"):
        return [0] * layers
    return [c["sliding_window"]] * layers


def dims(c: dict) -> tuple[int, int, int, int]:
    heads, kv = c["num_attention_heads"], c.get("num_key_value_heads") or c["num_attention_heads"]
    return c["hidden_size"], heads, kv, c.get("head_dim") or c["hidden_size"] // heads


def layer_gemm_weights(c: dict) -> int:
    hidden, heads, kv, d = dims(c)
    return hidden * heads * d + 2 * hidden * kv * d + heads * d * hidden + 3 * hidden * c["intermediate_size"]


def parameters(c: dict) -> int:
    hidden, heads, kv, d = dims(c)
    bias, qk_norm, norms = DENSE_FAMILY[c["model_type"]]
    per_layer = layer_gemm_weights(c) + (heads * d + 2 * kv * d if bias else 0) + (2 * d if qk_norm else 0) \
        + norms * hidden
    embeddings = c["vocab_size"] * hidden * (1 if c["tie_word_embeddings"] else 2)
    return c["num_hidden_layers"] * per_layer + embeddings + hidden


def causal_pairs(q_len: int, window: int) -> int:
    """Sum over a fresh prefill's queries of the keys each attends (query i: i + 1, capped at W)."""
    if window <= 0 or window >= q_len:
        return q_len * (q_len + 1) // 2
    return window * (window + 1) // 2 + (q_len - window) * window


@pytest.fixture(scope="module", params=DENSE_HERE)
def dense(request):
    model_id = request.param
    return model_id, text_config(model_id), tensor_cast.analyze(model_id, device="h100-sxm", symbolic=True)


def test_dense_prefill_flops_from_named_dims(dense):
    model_id, c, report = dense
    point = report.evaluate(batch_size=1, query_len=PREFILL)
    hidden, heads, kv, d = dims(c)
    bias = heads * d + 2 * kv * d if DENSE_FAMILY[c["model_type"]][0] else 0  # added in the GEMM epilogue
    gemm = PREFILL * c["num_hidden_layers"] * (2 * layer_gemm_weights(c) + bias) + 2 * hidden * c["vocab_size"]
    attention = sum(2 * heads * causal_pairs(PREFILL, w) * 2 * d for w in windows(c))
    tensor_core = sum(f for precision, f in point.flops_by_precision.items() if precision != "vector")
    assert tensor_core == gemm + attention, model_id
    assert point.total_flops == pytest.approx(gemm + attention, rel=0.02)  # + norms, RoPE, softmax, activations


def test_dense_decode_kv_cache_from_named_dims(dense):
    model_id, c, report = dense
    point = report.evaluate(batch_size=DECODE_BATCH, query_len=1, context_len=DECODE_CONTEXT)
    _, _, kv, d = dims(c)
    cached = DECODE_CONTEXT + 1
    expected = sum(DECODE_BATCH * (min(w, cached) if w else cached) * kv * 2 * d * 2 for w in windows(c))
    assert point.memory.kv_cache_bytes == expected, model_id
    assert sum(point.kv_cache_by_kind.values()) == expected


def test_dense_parameters_from_named_dims(dense):
    model_id, c, report = dense
    total = parameters(c)
    assert report.num_parameters == total
    assert report.num_parameters == pytest.approx(registry.lookup(model_id).public_parameters, rel=0.01)
    embedding = 0 if c["tie_word_embeddings"] else c["vocab_size"] * c["hidden_size"]  # a lookup, not multiplied
    assert report.active_parameters == total - embedding
    assert report.memory.weights_bytes == 2 * total  # bf16 checkpoints


def test_dense_step_has_one_attention_per_layer(dense):
    _, c, report = dense
    point = report.evaluate(batch_size=1, query_len=64)
    layers = c["num_hidden_layers"]
    assert sorted(r.layer for r in point.ops if r.op == "tensor_cast.attention") == list(range(layers))
    assert Counter(r.op for r in point.ops if r.layer == 0)["tensor_cast.fused_linear"] == 2  # QKV, gate+up


def test_qwen3_5_hybrid_layers_and_moe():
    """Qwen3.5-397B-A17B: gated DeltaNet layers and full-attention layers as `layer_types` says,
    one MoE op per layer, recurrent state instead of a KV cache on the linear layers."""
    model_id = HYBRID_HERE[0]
    c = text_config(model_id)
    point = tensor_cast.analyze(model_id, device="h200", batch_size=4, query_len=1, context_len=1024, tp=8)
    types = c["layer_types"]
    linear = [i for i, t in enumerate(types) if t == "linear_attention"]
    full = [i for i, t in enumerate(types) if t == "full_attention"]
    assert len(linear) + len(full) == c["num_hidden_layers"] and full
    by_op = {op: sorted(r.layer for r in point.ops if r.op == op)
             for op in ("tensor_cast.gated_delta_net", "tensor_cast.attention", "tensor_cast.moe")}
    assert by_op == {"tensor_cast.gated_delta_net": linear, "tensor_cast.attention": full,
                     "tensor_cast.moe": list(range(c["num_hidden_layers"]))}
    assert set(point.kv_cache_by_kind) == {"linear", "full"}
    assert point.num_parameters == pytest.approx(registry.lookup(model_id).public_parameters, rel=0.01)


def test_every_registry_model_is_traced_by_some_test():
    """A model added to the registry without a test that traces it fails here."""
    here = set(DENSE_HERE) | set(HYBRID_HERE)
    sources = "\n".join(p.read_text() for p in Path(__file__).parent.glob("test_*.py")
                        if p.name not in ("test_registry.py", Path(__file__).name))
    quoted = set(re.findall(r"[\"']([\w.-]+/[\w.-]+)[\"']", sources))
    missing = [e.id for e in registry.all_entries() if e.id not in here and e.id not in quoted]
    assert missing == []
