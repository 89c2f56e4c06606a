"""Beam (`beam`): transformers' default config is Reflection AI's Beam-1.0-501B-A23B (hidden 5120, 52 layers —
every sixth and the last global NoPE attention, the others a 512-token window with RoPE — 48 heads / 8 KV
heads of 128 with a sigmoid output gate, 3 dense layers of 20480, then 256 experts of 2560, top-8, grouped
sigmoid routing, no shared expert; vocab 151936 untied). Parameters against transformers' own modules and the
name's 501B, active parameters (the name's 23B) and the KV cache by hand, which layers hold the MoE and RoPE,
and TP2 halving weights and KV. The experts' SwiGLU, evaluated in float32, is costed as the standard one."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

import tensor_cast

HIDDEN, LAYERS, DENSE_LAYERS, DENSE = 5120, 52, 3, 20480
EXPERTS, TOP_K, EXPERT, VOCAB = 256, 8, 2560, 151936
KV_HEADS, HEAD_DIM, WINDOW = 8, 128, 512
GLOBAL = [i for i in range(LAYERS) if (i + 1) % 6 == 0 or i == LAYERS - 1]


@pytest.fixture(scope="module")
def beam(tmp_path_factory):
    config = AutoConfig.for_model("beam")
    data = {**config.to_dict(), "architectures": ["BeamForCausalLM"], "torch_dtype": "bfloat16"}
    folder = tmp_path_factory.mktemp("beam")
    (folder / "config.json").write_text(json.dumps(data))
    with torch.device("meta"):
        reference = sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
    return folder, reference


def test_parameters_against_transformers_and_by_hand(beam):
    folder, reference = beam
    report = tensor_cast.analyze(str(folder), device="h200", batch_size=1, query_len=1, context_len=0)
    assert report.num_parameters == reference
    assert report.num_parameters == pytest.approx(501e9, rel=0.01)  # the name's 501B
    idle_experts = (LAYERS - DENSE_LAYERS) * (EXPERTS - TOP_K) * 3 * HIDDEN * EXPERT
    assert report.active_parameters == report.num_parameters - idle_experts - VOCAB * HIDDEN  # embedding: a lookup
    assert report.active_parameters == pytest.approx(23e9, rel=0.03)  # the name's A23B


def test_kv_cache_by_hand_and_layer_structure(beam):
    folder, _ = beam
    context = 4096
    report = tensor_cast.analyze(str(folder), device="h200", batch_size=2, query_len=1, context_len=context)
    held = [context + 1 if i in GLOBAL else WINDOW for i in range(LAYERS)]
    assert report.memory.kv_cache_bytes == sum(2 * h * 2 * KV_HEADS * HEAD_DIM * 2 for h in held)
    ops = report.ops
    assert {r.layer for r in ops if r.op == "tensor_cast.moe"} == set(range(DENSE_LAYERS, LAYERS))
    assert {r.layer for r in ops if r.op == "tensor_cast.rope"} == set(range(LAYERS)) - set(GLOBAL)  # NoPE globals
    assert not any(r.op in ("Tensor.float", "Tensor.to") for r in ops if r.layer in range(DENSE_LAYERS))  # fp32 SwiGLU fused


def test_tp2_halves_weights_and_kv(beam):
    folder, _ = beam
    kwargs = dict(device="h200", batch_size=2, query_len=1, context_len=1024)
    one, two = (tensor_cast.analyze(str(folder), tp=tp, **kwargs) for tp in (1, 2))
    assert float(two.memory.weights_bytes) == pytest.approx(float(one.memory.weights_bytes) / 2, rel=1e-3)
    assert float(two.memory.kv_cache_bytes) == pytest.approx(float(one.memory.kv_cache_bytes) / 2)
