"""Bamba (`bamba`): Mamba-2 or GQA mixers, each followed by a dense gated MLP (models/adapters/bamba.py).

- the swapped Bamba mixer computes what transformers' own computes (CPU, random weights);
- Bamba-9B's published config (the registry's ibm-ai-platform/Bamba-9B: hidden 4096, 32 layers of which 9, 18 and 27
  attention, 32 heads / 8 KV heads, MLP 14336, 128 Mamba heads x 64 in one group, state 128, conv 4,
  vocab 128256 untied) against transformers' own modules for the parameters (its card: 9.78B), by hand
  for the Mamba state + KV cache, one mixer op per layer on the right layers;
- TP: a rank's mixer holds heads / tp (B / C replicated), the MLP and the KV heads split, the mixer's and the
  MLP's outputs each reduced once.
"""

from __future__ import annotations

import pytest
import torch
from swap_reference import assert_swap_keeps_output, randomize
from transformers import AutoConfig, AutoModelForCausalLM, BambaConfig
from transformers.models.bamba.modeling_bamba import BambaMixer

import tensor_cast
from tensor_cast.models import registry

HIDDEN, LAYERS, ATTENTION_LAYERS = 4096, 32, [9, 18, 27]
HEADS, KV_HEADS, HEAD_DIM, MLP = 32, 8, 128, 14336
H, P, N, G, K = 128, 64, 128, 1, 4
CHANNELS = H * P + 2 * G * N  # the conv's channels: x, B, C
BAMBA_9B = "ibm-ai-platform/Bamba-9B"  # the registry entry: its published config.json


def test_swapped_mixer_computes_what_transformers_computes():
    torch.manual_seed(0)
    config = BambaConfig(hidden_size=32, num_hidden_layers=1, mamba_n_heads=4, mamba_d_head=16, mamba_expand=2,
                         mamba_n_groups=2, mamba_d_state=6, mamba_chunk_size=4, num_attention_heads=4)
    module = BambaMixer(config, 0).eval()
    randomize(module)
    with torch.no_grad():
        module.A_log.copy_(torch.rand(4))  # a decaying state (A = -exp(A_log) < 0)
    assert_swap_keeps_output(module, torch.randn(2, 9, 32))


def test_parameters_against_transformers_and_the_card():
    report = tensor_cast.analyze(BAMBA_9B, device="h100", batch_size=1, query_len=1, context_len=0)
    config = registry.lookup(BAMBA_9B).config
    fields = {k: v for k, v in config.items() if k not in ("model_type", "architectures", "torch_dtype")}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("bamba", **fields))
    assert report.num_parameters == sum(p.numel() for p in model.parameters())
    assert report.num_parameters == pytest.approx(9.78e9, rel=0.005)  # the card's 9.78B
    # dense; the untied embedding table is a lookup, not compute: every other weight is active
    assert report.active_parameters == report.num_parameters - 128256 * HIDDEN


def test_one_mixer_op_per_layer_and_state_by_hand():
    report = tensor_cast.analyze(BAMBA_9B, device="h100", batch_size=4, query_len=1, context_len=8192)
    ops = report.ops
    assert {r.layer for r in ops if r.op == "tensor_cast.attention"} == set(ATTENTION_LAYERS)
    assert {r.layer for r in ops if r.op == "tensor_cast.mamba2_scan"} == set(range(LAYERS)) - set(ATTENTION_LAYERS)
    state = (LAYERS - 3) * 4 * (H * P * N + (K - 1) * CHANNELS) * 2  # SSM state + conv window, bf16
    kv = 3 * 4 * 8193 * KV_HEADS * 2 * HEAD_DIM * 2
    assert report.memory.kv_cache_bytes == state + kv


def test_tp_splits_the_mixer_heads_mlp_and_kv():
    kwargs = dict(device="h100", batch_size=2, query_len=1, context_len=4096)
    one, four = (tensor_cast.analyze(BAMBA_9B, tp=tp, **kwargs) for tp in (1, 4))
    rank_state = (LAYERS - 3) * 2 * (H // 4 * P * N + (K - 1) * (H // 4 * P + 2 * G * N)) * 2  # B / C replicated
    kv = 3 * 2 * 4097 * KV_HEADS * 2 * HEAD_DIM * 2
    assert four.memory.kv_cache_bytes == rank_state + kv // 4
    scan = next(r for r in four.ops if r.op == "tensor_cast.mamba2_scan")
    assert scan.shapes.startswith(f"(2, 1, {H // 4 * P + 2 * G * N})")  # x / B / C of the rank's 32 heads
    down = [r for r in four.ops if r.op == "linear" and r.layer == 0 and r.shapes.endswith(f"({HIDDEN}, {MLP // 4})")]
    assert down, "the rank's down projection reads MLP / 4 inputs"
    assert float(four.memory.weights_bytes) < float(one.memory.weights_bytes) / 3.5
    # the mixer's out_proj and the MLP's down_proj (`feed_forward`) are row-parallel: one reduction each
    assert sum("all_reduce" in r.op for r in four.ops if r.layer == 0) == 2
