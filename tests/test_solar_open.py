"""Solar Open (`solar_open`, upstage/Solar-Open-100B): GLM-4.5's MoE in every layer under GQA attention.

Checked from the published config's named dimensions: parameters (card: 102.6B total, 12B active), one
MoE op per layer with its GEMM FLOPs (router, top-8 SwiGLU experts, one shared expert), the GQA KV
cache, TP all-reduces; and by a second route: the same dimensions written as a GLM-4.5 (`glm4_moe`)
config with no dense first layers and no q/k norm cost the same.

Dimensions: hidden 4096, 48 layers, 64 query / 8 KV heads of 128, 128 routed experts of 1280 (top-8)
+ 1 shared of 1280, vocab 196608, untied.
"""

from __future__ import annotations

import json

import pytest

import tensor_cast
from tensor_cast.models import registry

MODEL = "upstage/Solar-Open-100B"
HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, VOCAB = 4096, 48, 64, 8, 128, 196608
EXPERTS, TOP_K, EXPERT, SHARED = 128, 8, 1280, 1
POINT = {"device": "h200", "batch_size": 8, "query_len": 1, "context_len": 1024}


def expert() -> int:
    return 3 * HIDDEN * EXPERT  # gate, up, down


def layer_parameters() -> int:
    attention = HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * HIDDEN
    moe = EXPERTS * HIDDEN + (EXPERTS + SHARED) * expert()  # router (its correction bias is a buffer)
    return attention + moe + 2 * HIDDEN  # two norms


@pytest.fixture(scope="module")
def point():
    return tensor_cast.analyze(MODEL, **POINT)


def test_parameters_by_hand(point):
    total = LAYERS * layer_parameters() + HIDDEN + 2 * VOCAB * HIDDEN  # final norm, embedding, lm_head
    assert point.num_parameters == total == 102_651_793_408
    assert total == pytest.approx(registry.lookup(MODEL).public_parameters, rel=0.001)  # card: 102.6B
    active = total - LAYERS * (EXPERTS - TOP_K) * expert() - VOCAB * HIDDEN  # the input embedding is a lookup
    assert point.active_parameters == active
    assert active + VOCAB * HIDDEN == pytest.approx(12e9, rel=0.01)  # card: 12B active


def test_every_layer_is_one_moe_op(point):
    moe = [r for r in point.ops if r.op == "tensor_cast.moe"]
    assert sorted(r.layer for r in moe) == list(range(LAYERS))
    tokens = POINT["batch_size"]
    gemm = 2 * tokens * (EXPERTS * HIDDEN + (TOP_K + SHARED) * expert())
    assert moe[0].flops == pytest.approx(gemm, rel=0.01)  # GEMMs dominate the op's FLOPs
    assert not [r for r in point.ops if r.module.endswith("mlp.down_proj")]  # no dense MLP anywhere


def test_kv_cache_by_hand(point):
    kv = LAYERS * POINT["batch_size"] * (POINT["context_len"] + 1) * KV_HEADS * 2 * HEAD_DIM * 2
    assert point.memory.kv_cache_bytes == kv


def test_tp8_reduces_each_sub_block_once():
    report = tensor_cast.analyze(MODEL, tp=8, **POINT)
    assert sum(r.op == "tensor_cast.all_reduce" for r in report.ops) == 1 + 2 * LAYERS  # embedding, attention, MoE
    kv = LAYERS * POINT["batch_size"] * (POINT["context_len"] + 1) * (KV_HEADS // 8) * 2 * HEAD_DIM * 2
    assert report.memory.kv_cache_bytes == kv


def test_same_cost_as_the_glm_4_5_route(tmp_path, point):
    config = dict(registry.lookup(MODEL).config, model_type="glm4_moe", architectures=["Glm4MoeForCausalLM"],
                  use_qk_norm=False, attention_bias=False, n_group=1, topk_group=1)
    (tmp_path / "config.json").write_text(json.dumps(config))
    glm = tensor_cast.analyze(str(tmp_path), **POINT)
    assert glm.num_parameters == point.num_parameters and glm.active_parameters == point.active_parameters
    assert glm.total_flops == pytest.approx(point.total_flops, rel=1e-9)
    assert glm.total_time_s == pytest.approx(point.total_time_s, rel=1e-9)
