"""HY v3 (`hy_v3`, Tencent): GQA with q/k norms over a MoE (sigmoid routing with a correction bias on the
block, shared experts), dense layers where `mlp_layer_types` says.

No published config.json was found here (no registry entry; the family loads from a config.json):
transformers' own default config (its documented defaults: hidden 4096, 64 / 8 heads of 128, 192
experts of 1536, top-8, one shared expert, vocab 120832) cut to 4 layers, the first dense. Checked:
parameters against transformers' own modules and by hand, one MoE op per sparse layer with its GEMM
FLOPs, the KV cache by hand.
"""

from __future__ import annotations

import pytest
from transformers import AutoConfig
from transformers_reference import transformers_parameters, write_config

import tensor_cast

LAYERS, BATCH, CONTEXT = 4, 8, 1024
MLP_TYPES = ["dense", "sparse", "sparse", "sparse"]


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    config = AutoConfig.for_model("hy_v3", num_hidden_layers=LAYERS, mlp_layer_types=MLP_TYPES)
    folder = tmp_path_factory.mktemp("hy_v3")
    write_config(config, folder)
    reference = transformers_parameters(config)
    report = tensor_cast.analyze(str(folder), device="h200", batch_size=BATCH, query_len=1, context_len=CONTEXT)
    return config, report, reference


def test_parameters_against_transformers_and_by_hand(case):
    c, report, reference = case
    h, d = c.hidden_size, c.head_dim
    attention = h * (c.num_attention_heads + 2 * c.num_key_value_heads) * d + c.num_attention_heads * d * h + 2 * d
    expert = 3 * h * c.moe_intermediate_size
    moe = c.num_experts * h + (c.num_experts + c.num_shared_experts) * expert  # router, routed, shared
    dense = 3 * h * c.intermediate_size
    total = LAYERS * (attention + 2 * h) + dense + 3 * moe + h + 2 * c.vocab_size * h
    assert report.num_parameters == total == reference


def test_one_moe_op_per_sparse_layer(case):
    c, report, _ = case
    moe = [r for r in report.ops if r.op == "tensor_cast.moe"]
    assert sorted(r.layer for r in moe) == [i for i, t in enumerate(MLP_TYPES) if t == "sparse"]
    expert = 3 * c.hidden_size * c.moe_intermediate_size
    gemm = 2 * BATCH * (c.num_experts * c.hidden_size + (c.num_experts_per_tok + c.num_shared_experts) * expert)
    assert moe[0].flops == pytest.approx(gemm, rel=0.01)


def test_kv_cache_by_hand(case):
    c, report, _ = case
    assert report.memory.kv_cache_bytes == LAYERS * BATCH * (CONTEXT + 1) * c.num_key_value_heads * 2 * c.head_dim * 2
