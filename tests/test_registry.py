"""The offline registry: every entry loads, builds on meta, and matches its public size.

Two independent routes: `num_parameters` (counted on the meta model, multiplied by layer-kind
counts) against the public size (within 1%), and, for dense families, against an analytic count
written here from the config's named dimensions (exact).
"""

from __future__ import annotations

import pytest

from tensor_cast.memory import parameter_table
from tensor_cast.models import registry
from tensor_cast.models.build import build_representative
from tensor_cast.models.loader import load_spec

ENTRIES = registry.all_entries()


def counted(model_id: str) -> int:
    return sum(p.total for p in parameter_table(build_representative(load_spec(model_id))))


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_parameter_count_matches_public_size(entry):
    assert entry.public_parameters, f"{entry.id} has no public_parameters"
    assert entry.source.startswith("https://"), f"{entry.id} has no source"
    assert counted(entry.id) == pytest.approx(entry.public_parameters, rel=0.01)


def dense_decoder_params(cfg: dict, *, qkv_bias: bool, qk_norm: bool, norms_per_layer: int) -> int:
    hidden, heads = cfg["hidden_size"], cfg["num_attention_heads"]
    kv = cfg.get("num_key_value_heads") or heads
    head_dim = cfg.get("head_dim") or hidden // heads
    q, k_v = heads * head_dim, kv * head_dim
    attention = hidden * q + 2 * hidden * k_v + q * hidden + (q + 2 * k_v if qkv_bias else 0)
    mlp = 3 * hidden * cfg["intermediate_size"]
    per_layer = attention + mlp + norms_per_layer * hidden + (2 * head_dim if qk_norm else 0)
    embeddings = cfg["vocab_size"] * hidden * (1 if cfg.get("tie_word_embeddings", False) else 2)
    return cfg["num_hidden_layers"] * per_layer + embeddings + hidden


FAMILY = {  # model_type -> how its layers differ from Llama's
    "llama": dict(qkv_bias=False, qk_norm=False, norms_per_layer=2),
    "mistral": dict(qkv_bias=False, qk_norm=False, norms_per_layer=2),
    "qwen2": dict(qkv_bias=True, qk_norm=False, norms_per_layer=2),
    "qwen3": dict(qkv_bias=False, qk_norm=True, norms_per_layer=2),
    "gemma3_text": dict(qkv_bias=False, qk_norm=True, norms_per_layer=4),
}
DENSE = [e for e in ENTRIES if (e.config.get("text_config") or e.config)["model_type"] in FAMILY]


@pytest.mark.parametrize("entry", DENSE, ids=[e.id for e in DENSE])
def test_dense_count_matches_analytic_formula(entry):
    cfg = dict(entry.config.get("text_config") or entry.config)
    cfg.setdefault("tie_word_embeddings", entry.config.get("tie_word_embeddings", cfg["model_type"] == "gemma3_text"))
    assert counted(entry.id) == dense_decoder_params(cfg, **FAMILY[cfg["model_type"]])


def test_ids_are_case_insensitive_and_aliases_resolve():
    assert load_spec("META-LLAMA/llama-3.1-8b").name == "meta-llama/Llama-3.1-8B"
    assert load_spec("mistralai/Mistral-7B").name == "mistralai/Mistral-7B-v0.1"


def test_required_models_are_present():
    required = ["meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-70B", "meta-llama/Llama-3.1-405B",
                "meta-llama/Llama-3.2-1B", "meta-llama/Llama-3.2-3B", "Qwen/Qwen3-0.6B", "Qwen/Qwen3-8B",
                "Qwen/Qwen3-32B", "Qwen/Qwen2.5-7B", "Qwen/Qwen2.5-72B", "mistralai/Mistral-7B", "google/gemma-3-1b-it"]
    assert [m for m in required if registry.lookup(m) is None] == []


def test_head_dim_is_not_hidden_over_heads_for_qwen3():
    """Trap: Qwen3-8B has head_dim 128 while hidden/heads = 4096/32 = 128, but Qwen3-32B has
    hidden/heads = 5120/64 = 80 and head_dim 128."""
    spec = load_spec("Qwen/Qwen3-32B")
    assert spec.layers[0].attention.head_dim == 128 != spec.hidden_size // spec.layers[0].attention.num_heads


def test_cli_lists_the_supported_families(capsys):
    from tensor_cast.cli import main
    from tensor_cast.models.adapters import supported_model_types

    assert main(["models", "--families"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert sorted(rows) == supported_model_types()
    assert rows["deepseek_v3"][1:] == ["kimi_k2", "3"]  # DeepSeek-V3, DeepSeek-R1, and Kimi-K2 under its alias
    assert rows["qwen3_5_text"][-1] == "0" and rows["glm4_moe_lite"][-1] == "0"  # families beyond the registry
    # GLM-4.5, -4.5-Air, -4.6 and the two Ling 2.0 configs (remote code, built as glm4_moe: models/translations.py)
    assert rows["glm4_moe"][1:] == ["bailing_moe", "(BailingMoeV2ForCausalLM)", "5"]
