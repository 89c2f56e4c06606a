"""K-EXAONE (`exaone_moe`, LG AI Research): EXAONE 4's attention over DeepSeek-V3's MoE.

A K-EXAONE-shaped config (no complete published config.json was found here, so there is no registry
entry; the family loads from a config.json): the dimensions of TensorRT-LLM's K-EXAONE test config
(hidden 6144, 64 query / 8 KV heads of 128, 128 experts of 2048 top-8 + 1 shared, the first layer a
dense MLP of 18432, vocab 153600) with the card's 3:1 sliding / global layers, a 128-token window and
48 layers (the depth at which the parameters reach the card's 236B total, 23B active).

Checked: parameters against transformers' own modules and by hand, the active parameters, one MoE op
per sparse layer and a dense MLP on the first, RoPE on the sliding layers only (global layers are
NoPE), and the KV cache per kind by hand (sliding layers hold the window, global ones the context);
MTP drafting refused in one line (its MTP block is not modelled).
"""

from __future__ import annotations

import json

import pytest
from transformers import AutoConfig
from transformers_reference import transformers_parameters

import tensor_cast

HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 6144, 48, 64, 8, 128, 153600
EXPERTS, TOP_K, EXPERT, DENSE, WINDOW = 128, 8, 2048, 18432, 128
LAYER_TYPES = (["sliding_attention"] * 3 + ["full_attention"]) * (LAYERS // 4)
CONFIG = {"architectures": ["ExaoneMoeForCausalLM"], "model_type": "exaone_moe", "hidden_size": HIDDEN,
          "intermediate_size": DENSE, "moe_intermediate_size": EXPERT, "num_hidden_layers": LAYERS,
          "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM,
          "num_experts": EXPERTS, "num_experts_per_tok": TOP_K, "num_shared_experts": 1, "n_group": 1,
          "topk_group": 1, "norm_topk_prob": True, "routed_scaling_factor": 2.5, "vocab_size": VOCAB,
          "max_position_embeddings": 262144, "sliding_window": WINDOW, "layer_types": LAYER_TYPES,
          "first_k_dense_replace": 1, "rope_theta": 1000000, "rms_norm_eps": 1e-5, "tie_word_embeddings": False,
          "torch_dtype": "bfloat16"}
BATCH, CONTEXT = 8, 4096


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("k_exaone")
    (folder / "config.json").write_text(json.dumps(CONFIG))
    return str(folder)


@pytest.fixture(scope="module")
def point(model_dir):
    return tensor_cast.analyze(model_dir, device="h200", batch_size=BATCH, query_len=1, context_len=CONTEXT)


def expert() -> int:
    return 3 * HIDDEN * EXPERT


def test_parameters_by_hand_and_against_transformers(point):
    attention = HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * HIDDEN + 2 * HEAD_DIM  # q/k norms
    moe = EXPERTS * HIDDEN + (EXPERTS + 1) * expert()  # router (its correction bias a buffer), routed, shared
    total = (LAYERS * (attention + 2 * HIDDEN) + 3 * HIDDEN * DENSE + (LAYERS - 1) * moe + HIDDEN
             + 2 * VOCAB * HIDDEN)
    assert point.num_parameters == total
    fields = {k: v for k, v in CONFIG.items() if k != "model_type"}
    assert total == transformers_parameters(AutoConfig.for_model("exaone_moe", **fields))
    assert total == pytest.approx(236e9, rel=0.005)  # card: 236B
    active = total - (LAYERS - 1) * (EXPERTS - TOP_K) * expert() - VOCAB * HIDDEN
    assert point.active_parameters == active
    assert active + VOCAB * HIDDEN == pytest.approx(23.5e9, rel=0.03)  # card: 23B active


def test_layers_and_positions(point):
    ops = point.ops
    assert sorted(r.layer for r in ops if r.op == "tensor_cast.moe") == list(range(1, LAYERS))
    assert [r.layer for r in ops if r.op == "tensor_cast.act_mul"] == [0]  # the dense first layer's SwiGLU
    sliding = {i for i, t in enumerate(LAYER_TYPES) if t == "sliding_attention"}
    assert {r.layer for r in ops if r.op == "tensor_cast.rope"} == sliding  # global layers: no positions


def test_kv_cache_by_kind(point):
    per_token = KV_HEADS * 2 * HEAD_DIM * 2  # K and V, bf16
    sliding, full = LAYER_TYPES.count("sliding_attention"), LAYER_TYPES.count("full_attention")
    assert point.kv_cache_by_kind == {f"sliding({WINDOW})": sliding * BATCH * WINDOW * per_token,
                                      "full": full * BATCH * (CONTEXT + 1) * per_token}


def test_mtp_is_refused(tmp_path, capsys):
    from tensor_cast.cli import main

    (tmp_path / "config.json").write_text(json.dumps(dict(CONFIG, num_nextn_predict_layers=1)))
    assert main(["analyze", str(tmp_path), "--device", "h200", "--mtp", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "K-EXAONE's MTP block" in err[0]
