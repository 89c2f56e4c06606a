"""Gemma 4's text decoder (`gemma4_text`, and the `gemma4` wrapper as its text decoder): sliding layers and
global layers of their own head width and KV heads (transformers' `per_layer_config`), K = V on the global
layers (no value projection; keys and values both cached); the MoE layout (routed experts beside the dense
MLP). Parameters against transformers' own modules on meta, active parameters and the KV cache by hand,
tensor / expert parallelism, quantized experts, and the variants not modelled yet refused."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast
from tensor_cast.cli import main

BATCH, CONTEXT, WINDOW = 2, 100, 32
HEADS, KV, HEAD_DIM, GLOBAL_KV, GLOBAL_HEAD_DIM = 4, 2, 64, 1, 128
LAYER_TYPES = ["sliding_attention"] * 5 + ["full_attention"]


def text_config(**fields):
    values = dict(num_hidden_layers=6, hidden_size=256, num_attention_heads=HEADS, num_key_value_heads=KV,
                  head_dim=HEAD_DIM, global_head_dim=GLOBAL_HEAD_DIM, num_global_key_value_heads=GLOBAL_KV,
                  attention_k_eq_v=True, intermediate_size=512, sliding_window=WINDOW, layer_types=LAYER_TYPES,
                  vocab_size=1000, vocab_size_per_layer_input=1000, hidden_size_per_layer_input=0,
                  final_logit_softcapping=30.0)
    values.update(fields)
    return AutoConfig.for_model("gemma4_text", **values)


def write(folder, config):
    data = config.to_dict()
    data.pop("per_layer_config", None)  # a written config.json gives global_head_dim / num_global_key_value_heads
    data.update(global_head_dim=GLOBAL_HEAD_DIM, num_global_key_value_heads=GLOBAL_KV)
    (folder / "config.json").write_text(json.dumps(data))
    return str(folder)


def kv_bytes(batch: int, context: int, tp: int = 1) -> int:
    sliding = 5 * batch * min(context + 1, WINDOW) * 2 * (KV // tp) * HEAD_DIM * 2
    full = batch * (context + 1) * 2 * max(GLOBAL_KV // tp, 1) * GLOBAL_HEAD_DIM * 2  # 1 KV head: replicated on TP ranks
    return sliding + full


def analyze_against_transformers(config, folder):
    """(tensor_cast's report of `config`, transformers' own parameter count on meta)."""
    with torch.device("meta"):
        reference = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    return tensor_cast.analyze(write(folder, config), device="h100", batch_size=BATCH, query_len=1,
                               context_len=CONTEXT), reference


def test_parameters_against_transformers_and_kv_cache_by_hand(tmp_path):
    report, reference = analyze_against_transformers(text_config(), tmp_path)
    assert report.num_parameters == reference
    assert report.memory.kv_cache_bytes == kv_bytes(BATCH, CONTEXT)
    attention = [r for r in report.ops if r.op == "tensor_cast.attention"]
    assert len(attention) == 6


def test_global_layers_have_no_value_projection(tmp_path):
    """K = V: a global layer's parameters lack v_proj (hidden x KV heads x head width)."""
    report = tensor_cast.analyze(write(tmp_path, text_config()), device="h100", batch_size=1, query_len=1)
    names = {p.name for p in report.context.params}
    assert "model.layers.0.self_attn.v_proj.weight" in names
    assert not any(name.startswith("model.layers.1.self_attn.v_proj") for name in names)  # the stack's global layer


def test_tensor_parallel_splits_heads_and_replicates_the_single_global_kv_head(tmp_path):
    path = write(tmp_path, text_config())
    kwargs = dict(device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    one = tensor_cast.analyze(path, **kwargs)
    two = tensor_cast.analyze(path, tp=2, **kwargs)
    assert two.memory.kv_cache_bytes == kv_bytes(BATCH, CONTEXT, tp=2)
    assert float(two.memory.weights_bytes) < 0.6 * float(one.memory.weights_bytes)


def test_the_wrapper_is_costed_as_its_text_decoder(tmp_path):
    data = {"model_type": "gemma4", "architectures": ["Gemma4ForConditionalGeneration"], "tie_word_embeddings": True,
            "text_config": json.loads(json.dumps(text_config().to_dict()))}
    data["text_config"].pop("per_layer_config", None)
    data["text_config"].update(global_head_dim=GLOBAL_HEAD_DIM, num_global_key_value_heads=GLOBAL_KV)
    (tmp_path / "config.json").write_text(json.dumps(data))
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    assert report.context.architecture.endswith("(text decoder only)")
    assert report.memory.kv_cache_bytes == kv_bytes(BATCH, CONTEXT)


@pytest.mark.parametrize("field, value", [("hidden_size_per_layer_input", 64), ("num_kv_shared_layers", 2)])
def test_variants_not_modelled_are_refused_in_one_line(field, value, tmp_path, capsys):
    data = json.loads(json.dumps(text_config().to_dict()))
    data.pop("per_layer_config", None)
    data[field] = value
    (tmp_path / "config.json").write_text(json.dumps(data))
    assert main(["analyze", str(tmp_path), "--device", "h100"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{field}={value!r}" in err[0] and "not modelled yet" in err[0]


EXPERTS, TOP_K, EXPERT_WIDTH = 8, 2, 96


def moe_config():
    return text_config(enable_moe_block=True, num_experts=EXPERTS, top_k_experts=TOP_K,
                       moe_intermediate_size=EXPERT_WIDTH)


def test_moe_layout_against_transformers_and_by_hand(tmp_path):
    """Every layer runs its dense MLP and EXPERTS routed experts (top-TOP_K): parameters against
    transformers; active = all but the EXPERTS - TOP_K experts a token skips (the tied embedding counts
    once, as the LM head every token multiplies)."""
    config = moe_config()
    report, reference = analyze_against_transformers(config, tmp_path)
    assert report.num_parameters == reference
    skipped = 6 * (EXPERTS - TOP_K) * 3 * config.hidden_size * EXPERT_WIDTH
    assert config.tie_word_embeddings
    assert report.active_parameters == reference - skipped
    assert [r.op for r in report.ops].count("tensor_cast.moe") == 6
    assert report.memory.kv_cache_bytes == kv_bytes(BATCH, CONTEXT)


def test_moe_experts_quantize_and_split_over_expert_parallel_ranks(tmp_path):
    path = write(tmp_path, moe_config())
    kwargs = dict(device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    fp8 = tensor_cast.analyze(path, quant="fp8", **kwargs)
    numel = {p.name: p for p in fp8.context.params}
    assert numel["model.layers.0.experts.gate_up_proj"].bytes_per_element == 1  # the experts run as FP8
    ep = tensor_cast.analyze(path, tp=2, ep=2, **kwargs)
    rank = {p.name: p for p in ep.context.params}
    dense_down = rank["model.layers.0.mlp.down_proj.weight"]
    assert dense_down.numel == moe_config().hidden_size * moe_config().intermediate_size // 2  # TP halves the dense MLP
    assert rank["model.layers.0.experts.down_proj"].numel == EXPERTS * moe_config().hidden_size * EXPERT_WIDTH
