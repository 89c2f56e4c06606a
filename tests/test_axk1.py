"""A.X K1 (`axk1`, SK Telecom): DeepSeek-V3's layout (MLA, sigmoid grouped routing, one shared expert,
dense layers where `mlp_layer_types` says) with a norm on each MoE block's output.

No published config.json was found here (no registry entry; the family loads from a config.json):
transformers' own default config, whose documented defaults are the card's model (hidden 7168, 61
layers, the first dense, 192 experts of 2048, top-8, one shared, MLA q_lora 1536 / kv_lora 512).
Checked: full depth against the card (519B total, 33B active); cut to 4 layers, parameters against
transformers' own modules, one MLA op per layer and one MoE op per sparse layer with the block's
output norm left after it, the latent KV cache by hand, TP8 reductions.
"""

from __future__ import annotations

import pytest
from transformers import AutoConfig
from transformers_reference import transformers_parameters, write_config

import tensor_cast

BATCH, CONTEXT = 2, 64
MLP_TYPES = ["dense", "sparse", "sparse", "sparse"]


def test_full_depth_matches_the_card(tmp_path):
    config = AutoConfig.for_model("axk1")
    write_config(config, tmp_path)
    report = tensor_cast.analyze(str(tmp_path), device="h100", batch_size=1, query_len=1)
    assert report.num_parameters == pytest.approx(519e9, rel=0.002)  # card: 519B (518.98B)
    with_embedding = report.active_parameters + config.vocab_size * config.hidden_size
    assert with_embedding == pytest.approx(33e9, rel=0.01)  # card: 33B active (32.78B)


@pytest.fixture(scope="module")
def cut(tmp_path_factory):
    config = AutoConfig.for_model("axk1", num_hidden_layers=4, mlp_layer_types=MLP_TYPES)
    path = tmp_path_factory.mktemp("axk1")
    write_config(config, path)
    folder, reference = str(path), transformers_parameters(config)
    report = tensor_cast.analyze(folder, device="h100", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    return config, folder, report, reference


def test_parameters_against_transformers(cut):
    _, _, report, reference = cut
    assert report.num_parameters == reference


def test_mla_moe_and_the_output_norm(cut):
    _, _, report, _ = cut
    ops = report.ops
    assert sorted(r.layer for r in ops if r.op == "tensor_cast.mla_attention") == [0, 1, 2, 3]
    sparse = [i for i, t in enumerate(MLP_TYPES) if t == "sparse"]
    assert sorted(r.layer for r in ops if r.op == "tensor_cast.moe") == sparse
    norms = [r for r in ops if r.module.endswith("mlp.post_mlp_layernorm")]
    assert sorted(r.layer for r in norms) == sparse and {r.op for r in norms} == {"tensor_cast.rms_norm"}
    for layer in sparse:  # the norm reads the folded op's output
        names = [r.op for r in ops if r.layer == layer]
        assert names.index("tensor_cast.rms_norm", names.index("tensor_cast.moe")) > names.index("tensor_cast.moe")


def test_latent_kv_cache_by_hand(cut):
    config, _, report, _ = cut
    per_token = (config.kv_lora_rank + config.qk_rope_head_dim) * 2  # the latent and the rope key, bf16
    assert report.kv_cache_by_kind == {"mla": 4 * BATCH * (CONTEXT + 1) * per_token}


def test_tp8_reduces_attention_and_mlp(cut):
    _, folder, _, _ = cut
    report = tensor_cast.analyze(folder, device="h100", tp=8, batch_size=BATCH, query_len=1, context_len=CONTEXT)
    assert sum(r.op == "tensor_cast.all_reduce" for r in report.ops) == 1 + 2 * 4
