"""Property-based: random valid configs of each family keep the invariants a cost model must keep.

Hypothesis draws small configs (hidden 32-64, 1-3 layers: each example is one trace of ~1-2 s) of
a dense family (Llama, Qwen3 with q/k norms), a MoE family (Qwen3-MoE), an MLA + MoE family
(DeepSeek-V3) and a hybrid linear-attention family (Qwen3-Next), and checks:

- the step time is finite and positive;
- the symbolic report evaluated at the point equals the concrete report (time, FLOPs, bytes);
- every layer of the model is costed;
- the parameter count and the KV-cache bytes equal counts written here from the named dimensions
  (not Qwen3-Next's, whose DeltaNet parameters would need their own formula);
- decode cost (time, FLOPs, bytes) does not decrease as the context grows.

Derandomized, few examples per family, no deadline: stable in CI and about 15 s of CPU.
"""

from __future__ import annotations

import itertools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tensor_cast
from tensor_cast.models import registry

SETTINGS = settings(max_examples=2, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
BF16 = 2
SCRATCH = tempfile.TemporaryDirectory(prefix="tc_property_")  # removed when the test process ends


@st.composite
def attention_dims(draw: Any) -> dict[str, int]:
    heads = draw(st.sampled_from([2, 4]))
    return {"hidden_size": draw(st.sampled_from([32, 64])), "num_attention_heads": heads,
            "num_key_value_heads": draw(st.sampled_from([d for d in (1, 2, 4) if heads % d == 0])),
            "head_dim": draw(st.sampled_from([8, 16])), "num_hidden_layers": draw(st.integers(1, 3)),
            "vocab_size": draw(st.sampled_from([64, 128])), "intermediate_size": draw(st.sampled_from([32, 96])),
            "tie_word_embeddings": draw(st.booleans())}


@st.composite
def points(draw: Any) -> dict[str, int]:
    return {"batch_size": draw(st.integers(1, 8)), "query_len": draw(st.integers(1, 64)),
            "context_len": draw(st.integers(0, 512))}


def config_dir(model: str, changes: dict[str, Any]) -> str:
    config = dict(registry.lookup(model).config)
    config.update(changes)
    folder = Path(tempfile.mkdtemp(dir=SCRATCH.name))
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)


def check_invariants(path: str, point: dict[str, int], layers: int) -> tensor_cast.Report:
    report = tensor_cast.analyze(path, device="h100", **point)
    assert math.isfinite(report.total_time_s) and report.total_time_s > 0
    assert {r.layer for r in report.ops if r.layer is not None} == set(range(layers))  # every layer costed
    traced = tensor_cast.analyze(path, device="h100", symbolic=True)  # the same trace, costed in B, S, C
    symbolic = traced.evaluate(**point)
    for total in ("total_time_s", "total_flops", "total_bytes"):
        assert float(getattr(symbolic, total)) == pytest.approx(float(getattr(report, total)), rel=1e-9), total
    assert float(symbolic.memory.kv_cache_bytes) == pytest.approx(float(report.memory.kv_cache_bytes), rel=1e-12)
    decode = [traced.evaluate(batch_size=point["batch_size"], query_len=1, context_len=c) for c in (0, 64, 1024, 16384)]
    for before, after in itertools.pairwise(decode):
        for total in ("total_time_s", "total_flops", "total_bytes"):
            assert float(getattr(after, total)) >= float(getattr(before, total)) * (1 - 1e-12), total
    return report


def gqa_attention_params(d: dict[str, int], qk_norm: bool) -> int:
    h, heads, kv, hd = d["hidden_size"], d["num_attention_heads"], d["num_key_value_heads"], d["head_dim"]
    return h * heads * hd + 2 * h * kv * hd + heads * hd * h + (2 * hd if qk_norm else 0)


def embedding_params(d: dict[str, int]) -> int:
    return d["vocab_size"] * d["hidden_size"] * (1 if d["tie_word_embeddings"] else 2) + d["hidden_size"]


def gqa_kv_bytes(d: dict[str, int], point: dict[str, int]) -> int:
    tokens = point["batch_size"] * (point["context_len"] + point["query_len"])
    return tokens * d["num_hidden_layers"] * 2 * d["num_key_value_heads"] * d["head_dim"] * BF16


@pytest.mark.parametrize("model, qk_norm", [("meta-llama/Llama-3.2-1B", False), ("Qwen/Qwen3-8B", True)])
@SETTINGS
@given(dims=attention_dims(), point=points())
def test_dense_families(model, qk_norm, dims, point):
    report = check_invariants(config_dir(model, dims), point, dims["num_hidden_layers"])
    h, i = dims["hidden_size"], dims["intermediate_size"]
    per_layer = gqa_attention_params(dims, qk_norm) + 3 * h * i + 2 * h  # q/k/v/o, gate/up/down, two norms
    assert report.num_parameters == embedding_params(dims) + dims["num_hidden_layers"] * per_layer
    assert report.memory.kv_cache_bytes == gqa_kv_bytes(dims, point)


@SETTINGS
@given(dims=attention_dims(), point=points(), experts=st.sampled_from([4, 8]), data=st.data())
def test_moe_family(dims, point, experts, data):
    top_k = data.draw(st.integers(1, experts))  # top-k = E included: every expert hit
    width = data.draw(st.sampled_from([16, 32]))
    config = dict(dims, num_experts=experts, num_experts_per_tok=top_k, moe_intermediate_size=width)
    report = check_invariants(config_dir("Qwen/Qwen3-30B-A3B", config), point, dims["num_hidden_layers"])
    h = dims["hidden_size"]
    moe = experts * h + experts * 3 * h * width  # router, experts' gate/up/down
    per_layer = gqa_attention_params(dims, True) + moe + 2 * h
    assert report.num_parameters == embedding_params(dims) + dims["num_hidden_layers"] * per_layer
    assert report.memory.kv_cache_bytes == gqa_kv_bytes(dims, point)


@SETTINGS
@given(dims=attention_dims(), point=points(), data=st.data())
def test_mla_moe_family(dims, point, data):
    layers = dims["num_hidden_layers"]
    mla = {"kv_lora_rank": data.draw(st.sampled_from([16, 32])), "q_lora_rank": data.draw(st.sampled_from([None, 24])),
           "qk_nope_head_dim": 16, "qk_rope_head_dim": 8, "v_head_dim": data.draw(st.sampled_from([8, 16]))}
    moe = {"n_routed_experts": 8, "num_experts_per_tok": data.draw(st.integers(1, 8)), "n_group": 1, "topk_group": 1,
           "moe_intermediate_size": 16, "n_shared_experts": data.draw(st.integers(0, 1)),
           "first_k_dense_replace": data.draw(st.integers(0, layers - 1)), "num_nextn_predict_layers": 0}
    config = dict(dims, **mla, **moe, num_key_value_heads=dims["num_attention_heads"])
    del config["head_dim"]  # MLA: the rotary width is qk_rope_head_dim (a different head_dim is refused)
    report = check_invariants(config_dir("deepseek-ai/DeepSeek-V3", config), point, layers)
    h, heads, i = dims["hidden_size"], dims["num_attention_heads"], dims["intermediate_size"]
    qk = mla["qk_nope_head_dim"] + mla["qk_rope_head_dim"]
    q = h * heads * qk if mla["q_lora_rank"] is None else \
        h * mla["q_lora_rank"] + mla["q_lora_rank"] + mla["q_lora_rank"] * heads * qk  # q_a, its norm, q_b
    kv = h * (mla["kv_lora_rank"] + mla["qk_rope_head_dim"]) + mla["kv_lora_rank"] \
        + mla["kv_lora_rank"] * heads * (mla["qk_nope_head_dim"] + mla["v_head_dim"])  # kv_a, its norm, kv_b
    attention = q + kv + heads * mla["v_head_dim"] * h + 2 * h  # o_proj, two norms
    width, experts = moe["moe_intermediate_size"], moe["n_routed_experts"]
    # router weight, routed experts, shared experts (the router's score-correction bias is a buffer)
    moe_layer = experts * h + experts * 3 * h * width + moe["n_shared_experts"] * 3 * h * width
    dense, sparse = moe["first_k_dense_replace"], layers - moe["first_k_dense_replace"]
    expected = embedding_params(dims) + layers * attention + dense * 3 * h * i + sparse * moe_layer
    assert report.num_parameters == expected
    latent = mla["kv_lora_rank"] + mla["qk_rope_head_dim"]  # the cache holds the latent and the rope key
    assert report.memory.kv_cache_bytes == \
        point["batch_size"] * (point["context_len"] + point["query_len"]) * layers * latent * BF16


@SETTINGS
@given(dims=attention_dims(), point=points(), full_every=st.sampled_from([2, 4]))
def test_hybrid_linear_attention_family(dims, point, full_every):
    layers = 4
    config = dict(dims, num_hidden_layers=layers, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=16,
                  shared_expert_intermediate_size=16, linear_num_key_heads=2, linear_num_value_heads=4,
                  linear_key_head_dim=8, linear_value_head_dim=8, full_attention_interval=full_every,
                  layer_types=["full_attention" if (j + 1) % full_every == 0 else "linear_attention"
                               for j in range(layers)])
    check_invariants(config_dir("Qwen/Qwen3-Next-80B-A3B-Instruct", config), point, layers)
