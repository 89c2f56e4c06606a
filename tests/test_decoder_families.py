"""Llama-shaped decoder families served by the standard adapter row (models/adapters/__init__.py):
for each, transformers' own default config cut to 4 layers — parameters against transformers' own
modules built on the meta device (a second route), the KV cache by hand from the config (sliding
layers hold at most their window: the window is set below the context to exercise it); TP2 halves the
weights and the KV cache, or, for a family whose attention cannot be built per rank, is refused in one line."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
from packaging.version import Version
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast
from tensor_cast.errors import DeploymentError

FAMILIES = ("apertus", "smollm3", "exaone", "exaone4", "glm4", "glm", "cohere2", "arcee", "granite", "internlm3",
            "olmo3", "ernie4_5", "seed_oss", "ministral", "ministral3", "phi3", "starcoder2", "gemma", "gemma2", "olmo", "olmo2",
            "cohere", "phi", "hunyuan_v1_dense", "apertus1p5_text", "cwm", "jais2", "nanochat", "iquestcoder", "granite_swa",
            "hyperclovax", "vaultgemma", "helium", "nemotron", "stablelm")
CONTEXT, BATCH, WINDOW = 100, 2, 32


GIVEN = {"hunyuan_v1_dense": {"head_dim": 128},  # fields a family's transformers default leaves unusable
         "ministral": {"head_dim": 128}, "nemotron": {"num_key_value_heads": 8}}
# families whose transformers attention cannot be built per rank (deployment/config.py TP_UNSUPPORTED)
TP1_ONLY = ("helium", "stablelm")


def config_for(model_type: str):
    config = AutoConfig.for_model(model_type, num_hidden_layers=4, **GIVEN.get(model_type, {}))
    if getattr(config, "layer_types", None):
        config.layer_types = list(config.layer_types[:4])
    if hasattr(config, "sliding_window"):
        config.sliding_window = WINDOW
        if hasattr(config, "use_sliding_window"):
            config.use_sliding_window = True
    return config


def expected_kv_bytes(config, model_type: str) -> int:
    heads = config.num_attention_heads
    kv = config.num_key_value_heads or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kinds = list(getattr(config, "layer_types", None) or ["full_attention"] * 4)
    if model_type in ("ministral3", "phi3", "starcoder2", "phimoe"):  # Mistral's attention: the window on every layer
        kinds = ["sliding_attention"] * 4
    held = [min(CONTEXT + 1, WINDOW) if k == "sliding_attention" else CONTEXT + 1 for k in kinds]
    return sum(BATCH * h * 2 * kv * head_dim * 2 for h in held)  # K and V, bf16


def analyze_against_transformers(config, folder):
    """(tensor_cast's report of `config` written to `folder`, transformers' own parameter count on meta)."""
    data = config.to_dict()
    data["architectures"] = [AutoModelForCausalLM._model_mapping[type(config)].__name__]
    (folder / "config.json").write_text(json.dumps(data))
    with torch.device("meta"):
        reference = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    report = tensor_cast.analyze(str(folder), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    return report, reference


# families newer than the oldest transformers the project accepts (pyproject): the release that added them
ADDED_IN = {"apertus1p5_text": "5.24.0"}


@pytest.mark.parametrize("model_type", FAMILIES)
def test_family_parameters_and_kv_cache(model_type, tmp_path):
    if model_type in ADDED_IN and Version(transformers.__version__) < Version(ADDED_IN[model_type]):
        pytest.skip(f"{model_type} arrived in transformers {ADDED_IN[model_type]}")
    config = config_for(model_type)
    report, reference = analyze_against_transformers(config, tmp_path)
    assert report.num_parameters == reference
    assert report.memory.kv_cache_bytes == expected_kv_bytes(config, model_type)
    if model_type in TP1_ONLY:
        with pytest.raises(DeploymentError, match=rf"^tp=2 is not supported for model_type '{model_type}': .*; "
                                                  r"accepted tp: 1 \(use dp to scale out\)$"):
            tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT, tp=2)
        return
    # tensor parallelism over 2 GPUs: every weight (the vocabulary too) and the KV heads split in half
    split = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT, tp=2)
    assert float(split.memory.weights_bytes) == pytest.approx(float(report.memory.weights_bytes) / 2, rel=1e-3)
    assert float(split.memory.kv_cache_bytes) == pytest.approx(float(report.memory.kv_cache_bytes) / 2)


MOE_FAMILIES = {  # model_type: (E field, per-expert width field, fields to set where transformers' default is None)
    "flex_olmo": ("num_experts", "intermediate_size", {}),
    "phimoe": ("num_local_experts", "intermediate_size", {}),
    "granitemoe": ("num_local_experts", "intermediate_size", {}),
    "granitemoeshared": ("num_local_experts", "intermediate_size", {"shared_intermediate_size": 256}),
    "granitemoe_swa": ("num_local_experts", "intermediate_size", {"shared_intermediate_size": 256}),
    "kolibri1": ("num_local_experts", "moe_intermediate_size", {}),
    "sarvam_moe": ("n_routed_experts", "moe_intermediate_size", {}),
    "dots1": ("n_routed_experts", "moe_intermediate_size", {"n_routed_experts": 16, "num_experts_per_tok": 4,
                                                             "n_shared_experts": 1}),
    "flint": ("num_experts", "moe_intermediate_size", {}),  # mlp_only_layers [0, 1]: two dense layers
}


@pytest.mark.parametrize("model_type", sorted(MOE_FAMILIES))
def test_moe_family_parameters_active_parameters_and_kv_cache(model_type, tmp_path):
    """MoE rows: parameters against transformers; active parameters by hand — all of them but the input
    embedding table (a lookup) and the E - k routed experts a token skips in each MoE layer."""
    experts_field, width_field, given = MOE_FAMILIES[model_type]
    config = config_for(model_type)
    for name, value in given.items():
        setattr(config, name, value)
    dense_first = 1 if getattr(config, "first_k_dense_replace", None) is not None else 0
    if dense_first:
        config.first_k_dense_replace = dense_first
    dense_first = dense_first or len(getattr(config, "mlp_only_layers", None) or [])  # Qwen2-MoE-style dense layers
    report, reference = analyze_against_transformers(config, tmp_path)
    assert report.num_parameters == reference
    experts, k = getattr(config, experts_field), config.num_experts_per_tok
    skipped = (4 - dense_first) * (experts - k) * 3 * config.hidden_size * getattr(config, width_field)
    assert report.active_parameters == reference - config.vocab_size * config.hidden_size - skipped
    assert report.memory.kv_cache_bytes == expected_kv_bytes(config, model_type)
    assert sum(r.op == "tensor_cast.moe" for r in report.ops) == 4 - dense_first


def test_hunyuan_dense_without_head_dim_is_refused(tmp_path, capsys):
    """transformers' Hunyuan config defaults head_dim to None, which does not build: required, named in one line."""
    from tensor_cast.cli import main

    data = AutoConfig.for_model("hunyuan_v1_dense", num_hidden_layers=2).to_dict()
    data.pop("head_dim", None)
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "lacks required field(s) head_dim" in err and len(err.splitlines()) == 1


def hunyuan_moe_config(top_k: list[int], experts: int | list[int] = 8):
    return AutoConfig.for_model("hunyuan_v1_moe", num_hidden_layers=4, head_dim=128, num_key_value_heads=8,
                                num_experts=experts, moe_topk=top_k, use_qk_norm=True, intermediate_size=512)


def test_hunyuan_moe_per_layer_top_k_against_transformers(tmp_path):
    """Hunyuan MoE (Hunyuan-A13B's layout: lists of top-k per layer; one shared MLP and experts of
    intermediate_size): parameters against transformers' modules; active parameters by hand with each
    layer's own top-k; one MoE op per layer; layers of equal top-k share a kind."""
    config = hunyuan_moe_config([8, 8, 2, 4])
    report, reference = analyze_against_transformers(config, tmp_path)
    assert report.num_parameters == reference
    expert = 3 * config.hidden_size * config.intermediate_size
    skipped = sum(config.num_experts - k for k in config.moe_topk) * expert
    assert report.active_parameters == reference - config.vocab_size * config.hidden_size - skipped
    assert sum(r.op == "tensor_cast.moe" for r in report.ops) == 4
    assert report.memory.kv_cache_bytes == expected_kv_bytes(config, "hunyuan_v1_moe")


def test_hunyuan_moe_shared_mlp_splits_over_tp_beside_whole_ep_experts(tmp_path):
    """TP2 + EP2: each rank holds half of the experts at their whole width and half of the shared MLP's
    width (transformers builds both from intermediate_size: the shared MLP is rebuilt at the spec's width)."""
    config = hunyuan_moe_config([2] * 4)
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict()))
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT,
                                 tp=2, ep=2)
    numel = {p.name: p.numel for p in report.context.params}
    hidden, width = config.hidden_size, config.intermediate_size
    assert numel["model.layers.0.mlp.shared_mlp.down_proj.weight"] == hidden * width // 2
    assert numel["model.layers.0.mlp.experts.down_proj"] == config.num_experts * hidden * width  # E/ep stored, all traced


def test_hunyuan_moe_lists_the_modules_cannot_build_are_refused(tmp_path, capsys):
    from tensor_cast.cli import main

    data = hunyuan_moe_config([2] * 4).to_dict()
    data["moe_intermediate_size"] = [256] * 4  # transformers builds experts of intermediate_size (512)
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip()
    assert "moe_intermediate_size=256" in err and len(err.splitlines()) == 1
