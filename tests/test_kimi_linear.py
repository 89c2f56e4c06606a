"""Kimi-Linear (`kimi_linear`): Kimi Delta Attention and MLA without RoPE.

- the swapped modules compute what transformers' own modules compute (CPU, random weights);
- the KDA cost rule from named dimensions (decode: the recurrence; prefill: GDN's chunked form plus
  the per-channel decay);
- Kimi-Linear-48B-A3B (published config): parameters by hand from the named dimensions, active
  parameters against the card's 3B, one op per layer of each kind on the right layers, the state
  and latent KV cache by hand, TP2 halving the KDA heads but not the latent.

Dimensions (config.json): hidden 2304, 27 layers, KDA 32 heads x 128, conv 4; MLA 32 heads, no q LoRA,
kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128; dense first MLP 9216; 256 experts of 1024, top-8,
1 shared; vocab 163840, untied.
"""

from __future__ import annotations

import pytest
import torch
from swap_reference import assert_swap_keeps_output, randomize
from transformers import KimiLinearConfig
from transformers.models.kimi_linear.modeling_kimi_linear import KimiLinearAttention, KimiLinearDeltaAttention

import tensor_cast
from tensor_cast.capture.attention_interface import CONTEXT_KWARG
from tensor_cast.models import registry
from tensor_cast.models.module_swaps import apply_module_swaps

tc = torch.ops.tensor_cast
MODEL = "moonshotai/Kimi-Linear-48B-A3B-Instruct"
HIDDEN, LAYERS, VOCAB = 2304, 27, 163840
H, D, K = 32, 128, 4  # KDA heads, head width, conv kernel
RANK, NOPE, ROPE, V = 512, 128, 64, 128
DENSE, EXPERTS, TOP_K, EXPERT = 9216, 256, 8, 1024
MLA_LAYERS = [3, 7, 11, 15, 19, 23, 26]  # full_attn_layers 4, 8, ..., 24, 27 (1-indexed)


def tiny_config(**overrides):
    fields = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                  kv_lora_rank=16, q_lora_rank=None, qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8,
                  linear_attn_config={"num_heads": 4, "head_dim": 8, "short_conv_kernel_size": 4,
                                      "kda_layers": [1], "full_attn_layers": [2]},
                  moe_intermediate_size=16, intermediate_size=32, num_experts=4, num_experts_per_token=2)
    fields.update(overrides)
    return KimiLinearConfig(**fields)


def test_kda_opcheck():
    torch.manual_seed(0)
    q, k, v, g = (torch.randn(2, 5, 2 * 4) for _ in range(4))
    args = (q, k, v, g, torch.randn(2, 5, 2), torch.randn(24, 1, 3), torch.randn(2), torch.randn(8), 2, 4, 1)
    torch.library.opcheck(tc.kimi_delta_attention.default, args)


def test_swapped_kda_computes_what_transformers_computes():
    """Projections + one op + the fused sigmoid-gated norm against transformers' forward (its torch
    chunk loop with the per-channel decay), on CPU with random weights."""
    torch.manual_seed(0)
    module = KimiLinearDeltaAttention(tiny_config(), 0).eval()
    randomize(module)
    assert_swap_keeps_output(module, torch.randn(2, 9, 32))


def test_swapped_mla_without_rope_computes_what_transformers_computes():
    torch.manual_seed(0)
    module = KimiLinearAttention(tiny_config(), 1).eval()
    randomize(module)
    hidden, seq = torch.randn(2, 6, 32), 6
    causal = torch.full((seq, seq), float("-inf")).triu(1).expand(2, 1, seq, seq)
    with torch.no_grad():
        expected, _ = module(hidden, attention_mask=causal)
        assert apply_module_swaps(torch.nn.ModuleList([module])) == 1
        got, _ = module(hidden, **{CONTEXT_KWARG: torch.empty(0)})
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


# ---- the KDA cost rule --------------------------------------------------------------------------
CHANNELS = 3 * H * D


def kda_cost(batch, seq, decode_query_len=1):
    meta = dict(device="meta", dtype=torch.bfloat16)
    width = H * D
    args = (*(torch.empty(batch, seq, width, **meta) for _ in range(4)), torch.empty(batch, seq, H, **meta),
            torch.empty(CHANNELS, 1, K, **meta), torch.empty(H, **meta), torch.empty(width, **meta), H, D,
            decode_query_len)
    return tensor_cast.op_cost(tc.kimi_delta_attention.default, *args, device="h100").counts


def conv_flops(tokens):
    return tokens * CHANNELS * (2 * K + 4)  # depthwise conv + SiLU over q, k, v


def test_kda_decode_is_the_recurrence_with_the_gate_fused():
    batch = 8
    counts = kda_cost(batch, 1)
    per_token_head = 7 * D * D + 6 * D  # decay (one multiply per state element), Sᵀk, k·δᵀ, Sᵀq; q/k L2 norms
    gate = 8 * batch * H * (D + 1)  # per-channel g and per-head beta
    assert counts.flops == {"vector": conv_flops(batch) + batch * H * per_token_head + gate}
    state, conv_state = batch * H * D * D * 2, batch * (K - 1) * CHANNELS * 2
    assert counts.state_bytes == state + conv_state
    assert counts.bytes_written >= state + conv_state
    assert counts.bytes_read >= state + conv_state + batch * H * D * 2  # the raw per-channel gate


def test_kda_prefill_is_the_chunked_form_with_the_channel_decay():
    batch, seq, chunk = 2, 128, 64
    per_chunk_head = (2 * chunk**2 * D + 2 * chunk**3 / 3 + 2 * chunk**2 * 2 * D + 2 * chunk**2 * 2 * D
                      + 6 * chunk * D * D)  # as GDN's chunk (tests/test_linear_attention.py), dk = dv = D
    counts = kda_cost(batch, seq)
    tokens = batch * seq
    assert counts.flops["bf16"] == pytest.approx(batch * (seq // chunk) * H * per_chunk_head)
    assert counts.flops["vector"] == (conv_flops(tokens) + tokens * H * 6 * D  # conv; q/k L2 norms
                                      + 8 * tokens * H * (D + 1) + 6 * tokens * H * D)  # gate; decay
    assert kda_cost(4, 3, decode_query_len=3).flops.keys() == {"vector"}  # MTP drafts stay recurrent


# ---- Kimi-Linear-48B-A3B ------------------------------------------------------------------------
def kda_layer_parameters():
    width = H * D
    projections = 3 * HIDDEN * width + width * HIDDEN  # q, k, v, o
    low_rank_gates = 2 * (HIDDEN * D + D * width)  # forget gate f_a/f_b, output gate g_a/g_b
    return projections + low_rank_gates + HIDDEN * H + CHANNELS * K + H + width + D  # b, conv, A_log, dt_bias, o_norm


def mla_layer_parameters():
    return (HIDDEN * H * (NOPE + ROPE) + HIDDEN * (RANK + ROPE) + RANK + RANK * H * (NOPE + V)
            + H * V * HIDDEN)  # q, kv_a (+ its norm), kv_b, o


def expert():
    return 3 * HIDDEN * EXPERT


def test_kimi_linear_parameters_by_hand():
    report = tensor_cast.analyze(MODEL, device="h200", batch_size=1, query_len=1)
    moe = EXPERTS * expert() + expert() + EXPERTS * HIDDEN  # routed, shared, router (its correction bias is a buffer)
    per_layer_norms = 2 * HIDDEN
    total = (20 * kda_layer_parameters() + 7 * mla_layer_parameters() + 3 * HIDDEN * DENSE + 26 * moe
             + LAYERS * per_layer_norms + 2 * VOCAB * HIDDEN + HIDDEN)
    assert report.num_parameters == total
    assert report.num_parameters == pytest.approx(registry.lookup(MODEL).public_parameters, rel=0.01)
    # card: 3B activated: less the routed experts a token does not use and the input embedding (a lookup)
    assert report.active_parameters == total - 26 * (EXPERTS - TOP_K) * expert() - VOCAB * HIDDEN
    assert report.active_parameters == pytest.approx(3e9, rel=0.05)


@pytest.fixture(scope="module")
def kimi_linear_point():
    report = tensor_cast.analyze(MODEL, device="h200", symbolic=True)
    return report.evaluate(batch_size=4, query_len=1, context_len=8192)


def test_one_mixer_op_per_layer_on_the_published_layers(kimi_linear_point):
    ops = kimi_linear_point.ops
    assert {r.layer for r in ops if r.op == "tensor_cast.mla_attention"} == set(MLA_LAYERS)
    assert {r.layer for r in ops if r.op == "tensor_cast.kimi_delta_attention"} == set(range(LAYERS)) - set(MLA_LAYERS)
    assert [r.op for r in ops].count("tensor_cast.moe") == LAYERS - 1  # layer 0's MLP is dense
    assert not any(r.op in ("tensor_cast.attention", "tensor_cast.gated_delta_net") for r in ops)


def test_state_and_latent_cache_by_hand(kimi_linear_point):
    batch, context = 4, 8192
    state = 20 * batch * (H * D * D + (K - 1) * CHANNELS) * 2  # fixed, bf16
    latent = 7 * batch * (context + 1) * (RANK + ROPE) * 2  # the rope-sized key is cached though unused
    assert kimi_linear_point.memory.kv_cache_bytes == state + latent


def test_tp2_halves_the_kda_heads_not_the_latent():
    kwargs = dict(device="h200", batch_size=2, query_len=1, context_len=4096)
    one = tensor_cast.analyze(MODEL, **kwargs)
    two = tensor_cast.analyze(MODEL, tp=2, **kwargs)
    state = 20 * 2 * (H * D * D + (K - 1) * CHANNELS) * 2
    latent = 7 * 2 * 4097 * (RANK + ROPE) * 2
    assert one.memory.kv_cache_bytes == state + latent
    assert two.memory.kv_cache_bytes == state // 2 + latent  # MLA's latent is replicated on every TP rank


def test_missing_layer_split_is_refused(tmp_path, capsys):
    import json

    from tensor_cast.cli import main

    config = dict(registry.lookup(MODEL).config)
    del config["linear_attn_config"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert main(["analyze", str(tmp_path), "--device", "h200"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "linear_attn_config" in err[0]
