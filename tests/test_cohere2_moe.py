"""Cohere2 MoE (`cohere2_moe`): Command-A's parallel attention + MLP block over routed experts whose
transformers module loops over the experts hit (swapped to `tensor_cast::routed_experts`,
models/cohere2_moe.py), shared experts, and dense layers of `prefix_dense_intermediate_size` where
`mlp_layer_types` says. Parameters against transformers' own modules on meta (a second route), active
parameters and the KV cache by hand."""

from __future__ import annotations

import json

import pytest
from test_decoder_families import BATCH, CONTEXT, WINDOW, analyze_against_transformers, config_for

import tensor_cast


def cohere2_moe(**fields):
    config = config_for("cohere2_moe")  # transformers' default cut to 4 layers: 3 sliding, 1 global
    config.num_shared_experts = 1
    config.mlp_layer_types = ["dense", "sparse", "sparse", "sparse"]
    config.prefix_dense_intermediate_size = 512
    for name, value in fields.items():
        setattr(config, name, value)
    return config


def test_parameters_active_parameters_moe_ops_and_kv_cache(tmp_path):
    config = cohere2_moe()
    report, reference = analyze_against_transformers(config, tmp_path)
    assert report.num_parameters == reference
    h, i, e, k = config.hidden_size, config.intermediate_size, config.num_experts, config.num_experts_per_tok
    skipped = 3 * (e - k) * 3 * h * i  # the 3 MoE layers' experts a token does not pick
    lookup_only = 0 if config.tie_word_embeddings else config.vocab_size * h  # a tied table is the LM head too
    assert report.active_parameters == reference - lookup_only - skipped
    assert sum(r.op == "tensor_cast.moe" for r in report.ops) == 3  # the first layer is dense
    heads, kv, head_dim = config.num_attention_heads, config.num_key_value_heads, config.hidden_size // config.num_attention_heads
    held = [min(CONTEXT + 1, WINDOW) if t == "sliding_attention" else CONTEXT + 1 for t in config.layer_types[:4]]
    assert heads % kv == 0 and report.memory.kv_cache_bytes == sum(BATCH * n * 2 * kv * head_dim * 2 for n in held)


def analyze(config, folder):
    """tensor_cast's report of `config` alone (no transformers reference: the first test has it)."""
    data = config.to_dict()
    data["architectures"] = ["Cohere2MoeForCausalLM"]
    (folder / "config.json").write_text(json.dumps(data))
    return tensor_cast.analyze(str(folder), device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)


def test_sigmoid_routing_is_read_from_the_config(tmp_path):
    report = analyze(cohere2_moe(expert_selection_fn="sigmoid"), tmp_path)
    assert sum(r.op == "tensor_cast.moe" for r in report.ops) == 3


def test_a_dense_layer_without_its_width_is_refused(tmp_path):
    with pytest.raises(tensor_cast.TensorCastError, match="prefix_dense_intermediate_size"):
        analyze(cohere2_moe(prefix_dense_intermediate_size=None), tmp_path)
