"""GLM-4.7-Flash's family (`glm4_moe_lite`): DeepSeek-V3's layout (MLA + dense first layers + MoE
with a shared expert) under GLM's names — the DeepSeek adapter row and its MLA attention class.
Checked against the DeepSeek-V3 route on the same dimensions, and the latent KV cache by hand."""

from __future__ import annotations

import json

import pytest

import tensor_cast

DIMS = {"hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 64, "num_hidden_layers": 3,
        "first_k_dense_replace": 1, "vocab_size": 512, "n_routed_experts": 8, "num_experts_per_tok": 2,
        "n_shared_experts": 1, "num_attention_heads": 20, "num_key_value_heads": 20, "q_lora_rank": 64,
        "kv_lora_rank": 32, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
        "n_group": 1, "topk_group": 1, "tie_word_embeddings": False}


def write(tmp_path, model_type, architecture):
    folder = tmp_path / model_type
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({**DIMS, "model_type": model_type,
                                                    "architectures": [architecture]}))
    return str(folder)


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("glm4_moe_lite")
    point = {"device": "h100", "batch_size": 2, "query_len": 1, "context_len": 100}
    return {t: tensor_cast.analyze(write(tmp, t, a), **point)
            for t, a in (("glm4_moe_lite", "Glm4MoeLiteForCausalLM"), ("deepseek_v3", "DeepseekV3ForCausalLM"))}


def test_the_layout_is_deepseek_v3s(reports):
    glm, deepseek = reports["glm4_moe_lite"], reports["deepseek_v3"]
    # 20 heads do not divide hidden 256: latent attention sizes its heads by qk_nope / qk_rope / v_head_dim
    assert glm.num_parameters == deepseek.num_parameters and glm.active_parameters == deepseek.active_parameters
    assert sum(r.op == "tensor_cast.mla_attention" for r in glm.ops) == 3
    assert sum(r.op == "tensor_cast.moe" for r in glm.ops) == 2  # the first layer is dense


def test_the_kv_cache_is_the_latent_one(reports):
    # per token and layer: the compressed KV (kv_lora_rank) + the rotary key (qk_rope_head_dim), bf16
    tokens = 2 * (100 + 1)
    assert reports["glm4_moe_lite"].memory.kv_cache_bytes == tokens * 3 * (32 + 16) * 2
