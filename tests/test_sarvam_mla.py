"""Sarvam's MLA MoE (`sarvam_mla`): a config of its own that transformers builds as DeepSeek-V3's modules
(DeepseekV3ForCausalLM) — the DeepSeek adapter row. Checked against the DeepSeek-V3 route on the same
dimensions (q_lora_rank None: no query compression, as Sarvam's default config), the latent KV cache by hand."""

from __future__ import annotations

import json

import pytest

import tensor_cast

DIMS = {"hidden_size": 256, "intermediate_size": 512, "moe_intermediate_size": 64, "num_hidden_layers": 3,
        "first_k_dense_replace": 1, "vocab_size": 512, "n_routed_experts": 8, "num_experts_per_tok": 2,
        "n_shared_experts": 1, "num_attention_heads": 8, "num_key_value_heads": 8, "q_lora_rank": None,
        "kv_lora_rank": 32, "qk_rope_head_dim": 16, "qk_nope_head_dim": 32, "v_head_dim": 32,
        "n_group": 1, "topk_group": 1, "tie_word_embeddings": False}
POINT = {"device": "h100", "batch_size": 2, "query_len": 1, "context_len": 100}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sarvam_mla")
    out = {}
    for model_type, architecture in (("sarvam_mla", "DeepseekV3ForCausalLM"), ("deepseek_v3", "DeepseekV3ForCausalLM")):
        folder = tmp / model_type
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({**DIMS, "model_type": model_type,
                                                        "architectures": [architecture]}))
        out[model_type] = str(folder)
    return out


def test_sarvam_mla_is_deepseek_v3s_layout(folders):
    sarvam, deepseek = (tensor_cast.analyze(folders[t], **POINT) for t in ("sarvam_mla", "deepseek_v3"))
    assert sarvam.num_parameters == deepseek.num_parameters and sarvam.active_parameters == deepseek.active_parameters
    assert sum(r.op == "tensor_cast.mla_attention" for r in sarvam.ops) == 3
    assert sum(r.op == "tensor_cast.moe" for r in sarvam.ops) == 2  # the first layer is dense
    # per token and layer: the compressed KV (kv_lora_rank) + the rotary key (qk_rope_head_dim), bf16
    assert sarvam.memory.kv_cache_bytes == 2 * (100 + 1) * 3 * (32 + 16) * 2
    assert float(sarvam.total_time_s) == pytest.approx(float(deepseek.total_time_s))
