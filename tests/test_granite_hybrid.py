"""Granite 4.0 hybrids (`granitemoehybrid`): Mamba-2 or GQA mixers, then MoE beside a shared MLP.

- the swapped Mamba-2 layer computes what transformers' own computes (CPU, random weights);
- a layout shaped like Granite-4.0-H-Small's public fields (hidden 4096, 40 layers of which 4 attention,
  32 heads / 8 KV heads, 72 experts of 768 top-10, a shared MLP of 1536, state 128, conv 4, expand 2,
  vocab 100352 tied; the Mamba heads, 128 x 64 in one group, are assumed: no complete published config
  was found here) against transformers' own modules for the parameters, by hand for the active
  parameters and the state + KV cache, one mixer op per layer on the right layers;
- TP: a rank's mixer holds heads / tp (transformers sizes it from mamba_expand x hidden_size: built
  with the fraction its heads span), the group replicated; tp must divide the heads;
- the dense layout (no experts: the shared MLP alone, Granite-4.0-H-Micro's kind).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from swap_reference import assert_swap_keeps_output, randomize
from transformers import AutoConfig, AutoModelForCausalLM, GraniteMoeHybridConfig
from transformers.models.granitemoehybrid.modeling_granitemoehybrid import GraniteMoeHybridMambaLayer

import tensor_cast
from tensor_cast.errors import TensorCastError
from tensor_cast.models.spec import ModelSpec

HIDDEN, VOCAB, LAYERS = 4096, 100352, 40
ATTENTION_LAYERS = [5, 15, 25, 35]
H, P, N, G, K = 128, 64, 128, 1, 4
HEADS, KV_HEADS, HEAD_DIM = 32, 8, 128
EXPERTS, TOP_K, EXPERT, SHARED = 72, 10, 768, 1536
CHANNELS = H * P + 2 * G * N


def small_shaped_config(**overrides) -> dict:
    config = dict(model_type="granitemoehybrid", hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                  layer_types=["attention" if i in ATTENTION_LAYERS else "mamba" for i in range(LAYERS)],
                  num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, intermediate_size=EXPERT,
                  num_local_experts=EXPERTS, num_experts_per_tok=TOP_K, shared_intermediate_size=SHARED,
                  mamba_n_heads=H, mamba_d_head=P, mamba_n_groups=G, mamba_d_state=N, mamba_d_conv=K,
                  mamba_expand=2, mamba_chunk_size=256, position_embedding_type="nope", vocab_size=VOCAB,
                  tie_word_embeddings=True, attention_multiplier=0.0078125, embedding_multiplier=12,
                  residual_multiplier=0.22, logits_scaling=16, torch_dtype="bfloat16")
    config.update(overrides)
    return config


SCRATCH = tempfile.TemporaryDirectory(prefix="granite-4.0-h-shaped-")  # removed when the test process ends


def spec_of(config: dict) -> ModelSpec:
    """The spec tensor_cast loads from this config.json (as a user's local checkpoint directory)."""
    folder = Path(tempfile.mkdtemp(dir=SCRATCH.name))
    (folder / "config.json").write_text(json.dumps(config))
    return tensor_cast.load_model(str(folder))


def transformers_parameters(config: dict) -> int:
    fields = {k: v for k, v in config.items() if k not in ("model_type", "torch_dtype")}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("granitemoehybrid", **fields))
    return sum(p.numel() for p in model.parameters())


def test_swapped_mamba_layer_computes_what_transformers_computes():
    torch.manual_seed(0)
    config = GraniteMoeHybridConfig(hidden_size=32, num_hidden_layers=1, layer_types=["mamba"], mamba_n_heads=4,
                                    mamba_d_head=16, mamba_expand=2, mamba_n_groups=2, mamba_d_state=6,
                                    mamba_chunk_size=4, num_attention_heads=4)
    module = GraniteMoeHybridMambaLayer(config, 0).eval()
    randomize(module)
    with torch.no_grad():
        module.A_log.copy_(torch.rand(4))  # a decaying state (A = -exp(A_log) < 0)
    assert_swap_keeps_output(module, torch.randn(2, 9, 32))


@pytest.fixture(scope="module")
def small_shaped():
    spec = spec_of(small_shaped_config())
    return spec, tensor_cast.analyze(spec, device="h200", symbolic=True)


def test_parameters_against_transformers_and_active_by_hand(small_shaped):
    spec, report = small_shaped
    point = report.evaluate(batch_size=1, query_len=1, context_len=0)
    total = transformers_parameters(small_shaped_config())
    assert point.num_parameters == total
    routed = LAYERS * EXPERTS * 3 * HIDDEN * EXPERT
    # tied embeddings: the table is also the LM head's weight, so every token uses it
    assert point.active_parameters == total - routed + LAYERS * TOP_K * 3 * HIDDEN * EXPERT
    assert point.active_parameters == pytest.approx(9e9, rel=0.05)  # Granite-4.0-H-Small's card: 9B active


def test_one_mixer_op_per_layer_and_state_by_hand(small_shaped):
    _, report = small_shaped
    point = report.evaluate(batch_size=4, query_len=1, context_len=8192)
    ops = point.ops
    assert {r.layer for r in ops if r.op == "tensor_cast.attention"} == set(ATTENTION_LAYERS)
    assert {r.layer for r in ops if r.op == "tensor_cast.mamba2_scan"} == set(range(LAYERS)) - set(ATTENTION_LAYERS)
    assert {r.layer for r in ops if r.op == "tensor_cast.moe"} == set(range(LAYERS))
    state = (LAYERS - 4) * 4 * (H * P * N + (K - 1) * CHANNELS) * 2  # the model dtype: bf16
    kv = 4 * 4 * 8193 * KV_HEADS * 2 * HEAD_DIM * 2
    assert point.memory.kv_cache_bytes == state + kv


def test_tp_builds_the_ranks_mixer_from_its_heads():
    spec = spec_of(small_shaped_config())
    kwargs = dict(device="h200", batch_size=2, query_len=1, context_len=4096)
    one, four = tensor_cast.analyze(spec, **kwargs), tensor_cast.analyze(spec, tp=4, **kwargs)
    state = (LAYERS - 4) * 2 * (H * P * N * 2 + (K - 1) * CHANNELS * 2)
    rank_state = (LAYERS - 4) * 2 * (H // 4 * P * N * 2 + (K - 1) * (H // 4 * P + 2 * G * N) * 2)  # B / C replicated
    kv = 4 * 2 * 4097 * KV_HEADS * 2 * HEAD_DIM * 2
    assert one.memory.kv_cache_bytes == state + kv
    assert four.memory.kv_cache_bytes == rank_state + kv // 4
    scan = next(r for r in four.ops if r.op == "tensor_cast.mamba2_scan")
    assert scan.shapes.startswith(f"(2, 1, {H // 4 * P + 2 * G * N})")  # x / B / C of the rank's 32 heads
    with pytest.raises(TensorCastError, match="tp=3 does not divide mamba_num_heads=128"):
        tensor_cast.analyze(spec, tp=3, **kwargs)


def test_dense_layout_runs_the_shared_mlp_alone():
    config = small_shaped_config(num_hidden_layers=4, layer_types=["mamba", "mamba", "mamba", "attention"],
                                 num_local_experts=0)
    point = tensor_cast.analyze(spec_of(config), device="h200", batch_size=1, query_len=1)
    assert point.num_parameters == transformers_parameters(config)
    assert point.active_parameters == point.num_parameters  # no experts; the tied table is the LM head
    assert not any(r.op == "tensor_cast.moe" for r in point.ops)
    assert sum(r.op == "tensor_cast.act_mul" for r in point.ops) == 4  # each layer's gated shared MLP
