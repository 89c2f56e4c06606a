"""Jamba (`jamba`): Mamba-1 or NoPE GQA mixers, each followed by a dense MLP or a MoE block
(models/adapters/jamba.py, models/mamba1.py, the Mamba-1 rules in backends/formulas/mamba.py).

- the swapped Mamba-1 mixer computes what transformers' own computes (CPU, random weights);
- Jamba-v0.1's published config (the registry's ai21labs/Jamba-v0.1: hidden 4096, 32 layers, attention on
  i % 8 == 4, 16 experts top-2 of 14336 on odd layers, 8192 inner channels with a state of 16, conv 4,
  time step 256, vocab 65536 untied) against transformers' own modules for the parameters (the model page:
  51.6B; AI21: 12B active), by hand for the active parameters and the Mamba state + KV cache, each mixer
  and MoE op on its layers;
- TP: a rank's mixer holds channels / tp (set through `mamba_expand` when that is no whole multiple of the
  hidden size), x_proj row-parallel (its output reduced before Jamba's time-step / B / C norms), so a
  Mamba layer runs three all-reduces; a stack no single period places is refused in one line.
"""

from __future__ import annotations

import pytest
import torch
from swap_reference import assert_swap_keeps_output, randomize
from transformers import AutoConfig, AutoModelForCausalLM, JambaConfig
from transformers.models.jamba.modeling_jamba import JambaMambaMixer

import tensor_cast
from tensor_cast.errors import UnsupportedModelError
from tensor_cast.models import registry
from tensor_cast.models.adapters.jamba import period_offset

JAMBA = "ai21labs/Jamba-v0.1"
HIDDEN, LAYERS, VOCAB = 4096, 32, 65536
ATTENTION = [i for i in range(LAYERS) if i % 8 == 4]
MOE = [i for i in range(LAYERS) if i % 2 == 1]
EXPERTS, TOP_K, FFN = 16, 2, 14336
D, N, K, KV_HEADS, HEAD_DIM = 8192, 16, 4, 8, 128


def test_swapped_mixer_computes_what_transformers_computes():
    torch.manual_seed(0)
    config = JambaConfig(hidden_size=32, num_hidden_layers=1, mamba_d_state=6, mamba_expand=2, mamba_dt_rank=4,
                         num_attention_heads=4)
    module = JambaMambaMixer(config, 0).eval()
    randomize(module)
    with torch.no_grad():
        module.A_log.copy_(torch.rand(module.A_log.shape))  # a decaying state (A = -exp(A_log) < 0)
    assert_swap_keeps_output(module, torch.randn(2, 9, 32))


def test_parameters_against_transformers_and_active_by_hand():
    report = tensor_cast.analyze(JAMBA, device="h100", batch_size=1, query_len=1, context_len=0)
    fields = {k: v for k, v in registry.lookup(JAMBA).config.items()
              if k not in ("model_type", "architectures", "torch_dtype", "auto_map")}
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.for_model("jamba", **fields))
    assert report.num_parameters == sum(p.numel() for p in model.parameters())
    assert report.num_parameters == pytest.approx(51.6e9, rel=0.005)
    idle = len(MOE) * (EXPERTS - TOP_K) * 3 * HIDDEN * FFN
    assert report.active_parameters == report.num_parameters - idle - VOCAB * HIDDEN  # the embedding: a lookup
    assert report.active_parameters == pytest.approx(12e9, rel=0.02)


def test_state_and_kv_by_hand_and_ops_on_their_layers():
    report = tensor_cast.analyze(JAMBA, device="h100", batch_size=4, query_len=1, context_len=8192)
    state = (LAYERS - len(ATTENTION)) * 4 * (D * N + (K - 1) * D) * 2  # SSM state + conv window, bf16
    kv = len(ATTENTION) * 4 * 8193 * 2 * KV_HEADS * HEAD_DIM * 2
    assert report.memory.kv_cache_bytes == state + kv
    layers = lambda op: {r.layer for r in report.ops if r.op == op}  # noqa: E731
    assert layers("tensor_cast.attention") == set(ATTENTION)
    mamba = set(range(LAYERS)) - set(ATTENTION)
    assert layers("tensor_cast.mamba1_scan") == layers("tensor_cast.mamba1_conv") == mamba
    assert layers("tensor_cast.moe") == set(MOE)
    assert "tensor_cast.rope" not in {r.op for r in report.ops}  # Jamba's attention has no positions


@pytest.mark.parametrize("tp", [2, 4])
def test_tp_splits_the_mixer_and_reduces_x_proj(tp):
    kwargs = dict(device="h100", batch_size=2, query_len=1, context_len=4096)
    one, split = (tensor_cast.analyze(JAMBA, tp=t, **kwargs) for t in (1, tp))
    assert float(split.memory.kv_cache_bytes) == pytest.approx(float(one.memory.kv_cache_bytes) / tp)
    scan = next(r for r in split.ops if r.op == "tensor_cast.mamba1_scan")
    assert scan.shapes.startswith(f"(2, 1, {D // tp})")  # the rank's channels (tp 4: 2048, under the hidden size)
    reductions = [r for r in split.ops if r.layer == 0 and "all_reduce" in r.op]
    assert len(reductions) == 3  # x_proj's time step / B / C, out_proj, the MLP


def test_a_stack_no_period_places_is_refused():
    assert period_offset([2], 3, "attention") == (3, 2) and period_offset([], 3, "MoE") == (4, 3)
    with pytest.raises(UnsupportedModelError, match=r"attention layers \[1, 2\] of 4 are not placed"):
        period_offset([1, 2], 4, "attention")
