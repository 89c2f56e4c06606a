"""MLA: the ops (opcheck, numerics), the cost rule derived from named dimensions, and the
replace_mla pass on a tiny transformers DeepSeek-V3 attention (op counts, same numbers, near-misses).

Dimensions are DeepSeek-V3's unless a test says otherwise: H = 128 heads, r = kv_lora_rank 512,
dr = qk_rope_head_dim 64, dn = qk_nope_head_dim 128, dv = v_head_dim 128 (the published config).
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import DeepseekV3Config
from transformers.models.deepseek_v3.modeling_deepseek_v3 import (
    DeepseekV3Attention,
    DeepseekV3RotaryEmbedding,
)

import tensor_cast
import tensor_cast.ops
from tensor_cast.backends.formulas import OpCall, lookup, tensor_infos
from tensor_cast.backends.formulas.registry import CostKnobs
from tensor_cast.capture.attention_interface import no_mask, tensor_cast_attention
from tensor_cast.compat import IMPLEMENTATION, hf_interfaces
from tensor_cast.errors import InvalidArgumentError
from tensor_cast.passes.graph_utils import call_target, module_class
from tensor_cast.passes.op_args import arg, args_of
from tensor_cast.passes.replace_mla import replace_mla

tc = torch.ops.tensor_cast
H, R, DR, DN, DV = 128, 512, 64, 128, 128


# ---- ops --------------------------------------------------------------------------------------
def small_mla_inputs(batch=2, heads=4, seq=5, rank=16, rope=4, nope=8, v_dim=8):
    torch.manual_seed(0)
    return (torch.randn(batch, heads, seq, nope), torch.randn(batch, heads, seq, rope), torch.randn(batch, 1, seq, rank),
            torch.randn(batch, 1, seq, rope), torch.randn(heads * (nope + v_dim), rank) / rank**0.5)


@pytest.mark.parametrize("sparse", [False, True])
def test_mla_opcheck(sparse):
    q_nope, q_rope, latent, k_rope, w = small_mla_inputs()
    indices = torch.tensor([[[0, -1], [0, 1], [2, 0], [3, 1], [4, 2]]] * 2, dtype=torch.int32) if sparse else None
    torch.library.opcheck(tc.mla_attention.default, (q_nope, q_rope, latent, k_rope, w, 0, 0.3, indices, 1))


def test_dsa_indexer_opcheck():
    torch.library.opcheck(tc.dsa_indexer.default, (torch.randn(2, 5, 3, 8), torch.randn(2, 5, 8), torch.randn(2, 5, 3),
                                                   0, 4))


def test_mla_reference_equals_the_absorbed_computation():
    """Absorbing W_UK into the query and W_UV into the output gives the same attention (why
    engines can decode on the latent): written out here, independently of the op."""
    batch, heads, seq, rank, rope, nope, v_dim = 2, 4, 5, 16, 4, 8, 8
    q_nope, q_rope, latent, k_rope, w = small_mla_inputs(batch, heads, seq, rank, rope, nope, v_dim)
    scale = 0.3
    w_heads = w.view(heads, nope + v_dim, rank)
    w_uk, w_uv = w_heads[:, :nope], w_heads[:, nope:]  # (H, dn, r), (H, dv, r)
    q_lat = torch.einsum("bhsd,hdr->bhsr", q_nope, w_uk)
    scores = (torch.einsum("bhsr,btr->bhst", q_lat, latent[:, 0]) + q_rope @ k_rope.transpose(-1, -2)) * scale
    scores = scores.masked_fill(torch.ones(seq, seq, dtype=torch.bool).triu(1), float("-inf"))
    o_lat = torch.einsum("bhst,btr->bhsr", scores.softmax(-1), latent[:, 0])
    absorbed = torch.einsum("bhsr,hvr->bshv", o_lat, w_uv)
    out = tc.mla_attention.default(q_nope, q_rope, latent, k_rope, w, 0, scale, None, 1)
    torch.testing.assert_close(out, absorbed, rtol=1e-4, atol=1e-5)


def test_dsa_indexer_picks_the_best_causal_keys():
    q, k = torch.zeros(1, 3, 1, 2), torch.tensor([[[1.0, 0.0], [3.0, 0.0], [2.0, 0.0]]])
    q[..., 0] = 1.0
    out = tc.dsa_indexer.default(q, k, torch.ones(1, 3, 1), 0, 2)
    assert out.tolist() == [[[0, -1], [1, 0], [1, 2]]]  # query i sees keys <= i, best first, -1 padding


# ---- cost rule -----------------------------------------------------------------------------------
def mla_args(batch, seq, context, *, topk=0, decode_query_len=1):
    meta = dict(device="meta", dtype=torch.bfloat16)
    return (torch.empty(batch, H, seq, DN, **meta), torch.empty(batch, H, seq, DR, **meta),
            torch.empty(batch, 1, seq, R, **meta), torch.empty(batch, 1, seq, DR, **meta),
            torch.empty(H * (DN + DV), R, **meta), context, 0.1,
            torch.empty(batch, seq, topk, device="meta", dtype=torch.int32) if topk else None, decode_query_len)


def mla_cost(batch, seq, context, form, *, topk=0, decode_query_len=1):
    args = mla_args(batch, seq, context, topk=topk, decode_query_len=decode_query_len)
    return tensor_cast.op_cost(tc.mla_attention.default, *args, device="h100", mla_form=form)


def test_absorbed_and_expanded_flops_from_named_dims():
    batch, seq, context = 8, 1, 4096
    pairs = batch * H * (context + 1)  # one causal query attends the cached tokens and itself
    tokens = batch * seq
    absorbed = (2 * tokens * H * DN * R  # q_nope · W_UK
                + 2 * pairs * (R + DR)  # scores on the latent + rope key
                + 2 * pairs * R  # probabilities · latent
                + 2 * tokens * H * R * DV)  # · W_UV
    expanded = (2 * batch * (context + seq) * R * H * (DN + DV)  # up-project every attended token
                + 2 * pairs * (DN + DR) + 2 * pairs * DV)  # multi-head attention
    softmax = 4 * pairs
    assert mla_cost(batch, seq, context, "absorbed").counts.flops["bf16"] == absorbed
    assert mla_cost(batch, seq, context, "expanded").counts.flops["bf16"] == expanded
    assert mla_cost(batch, seq, context, "absorbed").counts.flops["vector"] == softmax


def test_absorbed_costs_3_4x_the_expanded_attention_core_per_pair():
    """Per (query, cached key, head): 2·(2r + dr) FLOPs absorbed vs 2·(dn + dr + dv) expanded;
    the expanded form pays 2·r·H·(dn + dv) per cached token for the up-projection instead."""
    batch, seq = 4, 1

    def per_cached_token(form):
        return mla_cost(batch, seq, 2048, form).counts.flops["bf16"] - mla_cost(batch, seq, 1024, form).counts.flops["bf16"]

    absorbed, expanded = per_cached_token("absorbed") / 1024, per_cached_token("expanded") / 1024
    core_absorbed, core_expanded = 2 * batch * H * (2 * R + DR), 2 * batch * H * (DN + DR + DV)
    assert absorbed == core_absorbed
    assert expanded == core_expanded + 2 * batch * R * H * (DN + DV)
    assert core_absorbed / core_expanded == pytest.approx((2 * 512 + 64) / (128 + 64 + 128)) == pytest.approx(3.4)
    assert absorbed < expanded  # decode: absorbing wins by the up-projection it avoids


def test_auto_form_follows_the_step_size():
    assert mla_cost(16, 1, 4096, "auto").counts == mla_cost(16, 1, 4096, "absorbed").counts
    assert mla_cost(1, 2048, 0, "auto").counts == mla_cost(1, 2048, 0, "expanded").counts
    # with 2 MTP drafts a 3-token step is still decode
    assert mla_cost(16, 3, 4096, "auto", decode_query_len=3).counts == mla_cost(16, 3, 4096, "absorbed").counts


def test_latent_cache_bytes_and_single_read():
    batch, seq, context = 32, 1, 8192
    per_token = (R + DR) * 2  # latent + rope key, bf16, shared by every head
    counts = mla_cost(batch, seq, context, "absorbed").counts
    assert counts.state_bytes == batch * (context + seq) * per_token
    q_lat = batch * seq * H * R * 2
    read = (batch * seq * H * (DN + DR) * 2  # q_nope, q_rope
            + H * (DN + DV) * R * 2  # kv_b_proj weight
            + q_lat + q_lat  # latent query and latent output read back
            + batch * (context + seq) * per_token  # the cache, read once (one shared "KV head")
            + batch * seq * per_token)  # new latent to append
    assert counts.bytes_read == read


def test_sparse_attention_caps_keys_at_topk():
    batch, topk = 4, 2048
    dense, sparse = mla_cost(batch, 1, 100_000, "absorbed"), mla_cost(batch, 1, 100_000, "absorbed", topk=topk)
    per_pair = 2 * (2 * R + DR)
    q_proj = 2 * batch * H * DN * R + 2 * batch * H * R * DV
    assert sparse.counts.flops["bf16"] == q_proj + per_pair * batch * H * topk
    assert dense.counts.flops["bf16"] == q_proj + per_pair * batch * H * 100_001
    assert sparse.counts.state_bytes == dense.counts.state_bytes  # the whole latent cache is still held


def test_dsa_indexer_scores_every_cached_key():
    batch, seq, context, heads, dim, topk = 2, 1, 10_000, 64, 128, 2048
    meta = dict(device="meta", dtype=torch.bfloat16)
    cost = tensor_cast.op_cost(tc.dsa_indexer.default, torch.empty(batch, seq, heads, dim, **meta),
                               torch.empty(batch, seq, dim, **meta), torch.empty(batch, seq, heads, **meta), context, topk,
                               device="h100")
    pairs = batch * (context + 1)
    assert cost.counts.flops["bf16"] == 2 * heads * dim * pairs
    assert cost.counts.state_bytes == batch * (context + seq) * dim * 2


def test_unknown_form_is_a_clear_error():
    with pytest.raises(InvalidArgumentError, match="mla_form must be one of auto, absorbed, expanded, got 'bogus'"):
        mla_cost(1, 1, 8, "bogus")
    call = OpCall(op=tc.mla_attention.default, args=tensor_infos(mla_args(1, 1, 8)), knobs=CostKnobs(mla_form="bogus"))
    with pytest.raises(InvalidArgumentError, match="mla_form 'bogus' is not one of auto, absorbed, expanded"):
        lookup(tc.mla_attention.default).rule(call)  # a knob built past the API is refused by the rule too


# ---- the pass on a tiny transformers MLA attention -----------------------------------------------
TINY = dict(hidden_size=64, num_attention_heads=4, num_key_value_heads=4, q_lora_rank=32, kv_lora_rank=16,
            qk_nope_head_dim=8, qk_rope_head_dim=4, v_head_dim=8, num_hidden_layers=1, vocab_size=64,
            intermediate_size=64, moe_intermediate_size=16, n_routed_experts=4, num_experts_per_tok=2, n_group=1,
            topk_group=1, rope_scaling=None)


class Call(nn.Module):
    """One transformers attention module called the way its decoder layer calls it."""

    def __init__(self, attention: nn.Module, rotary: nn.Module) -> None:
        super().__init__()
        self.self_attn, self.rotary_emb = attention, rotary

    def forward(self, hidden, position_ids, carrier):
        cos, sin = self.rotary_emb(hidden, position_ids)
        out = self.self_attn(hidden_states=hidden, position_embeddings=(cos, sin), attention_mask=None,
                             tensor_cast_context=carrier)
        return out[0]


def tiny_mla_call() -> Call:
    torch.manual_seed(0)
    config = DeepseekV3Config(**TINY)
    config._attn_implementation_internal = IMPLEMENTATION
    return Call(DeepseekV3Attention(config, 0), DeepseekV3RotaryEmbedding(config)).eval()


def call_inputs(seq=5):
    return torch.randn(2, seq, 64), torch.arange(seq).unsqueeze(0), torch.empty(0, dtype=torch.int8)


def capture_attention(capture_module, module, *args):
    with hf_interfaces(attention=tensor_cast_attention, mask=no_mask):
        return capture_module(module, *args)


def count(gm, target) -> int:
    return sum(1 for n in gm.graph.nodes if call_target(n) == target)


def test_replace_mla_on_transformers_deepseek_attention(capture_module):
    module, args = tiny_mla_call(), call_inputs()
    before, real = capture_attention(capture_module, module, *args)
    after, _ = capture_attention(capture_module, module, *args)
    linear = torch._C._nn.linear
    assert count(before, tc.attention.default) == 1 and count(before, tc.mla_attention.default) == 0
    assert count(before, linear) == 5  # q_a, q_b, kv_a, kv_b, o
    after = replace_mla(after, decode_query_len=1)
    assert count(after, tc.attention.default) == 0 and count(after, tc.mla_attention.default) == 1
    assert count(after, linear) == 4  # kv_b_proj is inside the op now
    assert "copy_" not in {n.target for n in after.graph.nodes if n.op == "call_method"}  # no expanded K/V
    mla = next(n for n in after.graph.nodes if call_target(n) == tc.mla_attention.default)
    assert arg(mla, "decode_query_len") == 1
    assert "form" not in args_of(mla)  # the MLA form is a cost knob, not in the graph
    assert mla.meta["example_value"].shape == (2, 5, 4, 8)
    with torch.no_grad():
        expected, got = before(*real), after(*real)
    expected, got = (x[0] if isinstance(x, (list, tuple)) else x for x in (expected, got))
    assert got.shape == expected.shape and got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)


def test_replace_mla_leaves_other_attention_alone(capture_module):
    """A near-miss: a module named like DeepSeek's attention whose K/V come from plain projections."""

    class DeepseekV3Attention(nn.Module):  # same class name, no latent expansion
        def __init__(self) -> None:
            super().__init__()
            self.q, self.k, self.v = (nn.Linear(16, 16, bias=False) for _ in range(3))
            self.is_causal = True

        def forward(self, hidden, carrier):
            shape = (hidden.shape[0], hidden.shape[1], 2, 8)
            q, k, v = (p(hidden).view(shape).transpose(1, 2) for p in (self.q, self.k, self.v))
            out, _ = tensor_cast_attention(self, torch.cat([q[..., :4], q[..., 4:]], -1), k, v, None,
                                           tensor_cast_context=carrier)
            return out

    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.self_attn = DeepseekV3Attention()

        def forward(self, hidden, carrier):
            return self.self_attn(hidden, carrier)

    gm, _ = capture_module(Holder(), torch.randn(1, 3, 16), torch.empty(0, dtype=torch.int8))
    assert module_class(next(n for n in gm.graph.nodes if call_target(n) == tc.attention.default)) == "DeepseekV3Attention"
    gm = replace_mla(gm)
    assert count(gm, tc.attention.default) == 1 and count(gm, tc.mla_attention.default) == 0

