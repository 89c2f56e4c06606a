"""Each rewrite pass on a tiny graph: op counts before/after, same numbers on real tensors,
unchanged output shapes and dtypes, and near-miss patterns left alone.

The tiny modules mirror the HF structures the passes recognize (class names ending in RMSNorm /
RotaryEmbedding, helpers named apply_rotary_pos_emb / rotate_half), written here from scratch.
"""

from __future__ import annotations

import operator

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import tensor_cast.ops  # noqa: F401
from tensor_cast.passes import build_pipeline, run_pipeline
from tensor_cast.passes.eliminate_dead_code import eliminate_dead_code
from tensor_cast.passes.eliminate_noop_views import eliminate_noop_views
from tensor_cast.passes.fold_rotary_tables import fold_rotary_tables
from tensor_cast.passes.fuse_activation_mul import fuse_activation_mul
from tensor_cast.passes.fuse_add_rms_norm import fuse_add_rms_norm
from tensor_cast.passes.fuse_linears import fuse_linears
from tensor_cast.passes.fuse_rms_norm import fuse_rms_norm
from tensor_cast.passes.fuse_rope import fuse_rope
from tensor_cast.passes.fuse_squared_relu import fuse_squared_relu
from tensor_cast.passes.graph_utils import call_target

tc = torch.ops.tensor_cast
HIDDEN, HEADS, HEAD_DIM, INTER, BATCH, SEQ = 32, 4, 8, 48, 2, 5


class TinyRMSNorm(nn.Module):
    def __init__(self, n: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.to(torch.float32)
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class TinyLayerScale(TinyRMSNorm):
    """Same arithmetic as an RMSNorm but not named like one: must be left alone."""


class TinyRotaryEmbedding(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("inv_freq", 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2).float() / HEAD_DIM)))

    def forward(self, x: torch.Tensor, position_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        freqs = position_ids[:, :, None].float() * self.inv_freq[None, None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos().to(x.dtype), emb.sin().to(x.dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_pos_emb(q, k, cos, sin):
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin


class TinyAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj = (nn.Linear(HIDDEN, HEADS * HEAD_DIM, bias=False) for _ in range(3))
        self.o_proj = nn.Linear(HEADS * HEAD_DIM, HIDDEN, bias=False)

    def forward(self, x, cos, sin):
        shape = (x.shape[0], x.shape[1], HEADS, HEAD_DIM)
        q = self.q_proj(x).view(shape).transpose(1, 2)
        k = self.k_proj(x).view(shape).transpose(1, 2)
        v = self.v_proj(x).view(shape).transpose(1, 2)
        q, k = apply_rotary_pos_emb(q, k, cos, sin)
        mixed = (q * k + v).transpose(1, 2).reshape(x.shape[0], x.shape[1], -1).contiguous()
        return self.o_proj(mixed)


class TinyMLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(HIDDEN, INTER, bias=False), nn.Linear(HIDDEN, INTER, bias=False)
        self.down_proj = nn.Linear(INTER, HIDDEN, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class TinyDecoder(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rotary_emb = TinyRotaryEmbedding()
        self.input_layernorm, self.post_attention_layernorm = TinyRMSNorm(HIDDEN), TinyRMSNorm(HIDDEN)
        self.self_attn, self.mlp, self.norm = TinyAttention(), TinyMLP(), TinyRMSNorm(HIDDEN)

    def forward(self, h, position_ids):
        cos, sin = self.rotary_emb(h, position_ids)
        h = h + self.self_attn(self.input_layernorm(h), cos, sin)
        h = h + self.mlp(self.post_attention_layernorm(h))
        return self.norm(h)


def inputs():
    torch.manual_seed(0)
    return torch.randn(BATCH, SEQ, HIDDEN), torch.arange(SEQ).unsqueeze(0).expand(BATCH, SEQ)


def count(gm, target) -> int:
    return sum(1 for n in gm.graph.nodes if call_target(n) == target)


def run(gm, real_inputs):
    out = gm(*real_inputs)
    return out if isinstance(out, (list, tuple)) else (out,)


def check_same_numbers(capture_module, module, rewrite, *args):
    """Capture twice; rewrite one copy; both must compute the same outputs, shapes and dtypes."""
    before, real = capture_module(module, *args)
    after, _ = capture_module(module, *args)
    after = rewrite(after)
    for a, b in zip(run(before, real), run(after, real), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    return before, after


def test_fuse_rms_norm(capture_module):
    before, after = check_same_numbers(capture_module, TinyDecoder(), fuse_rms_norm, *inputs())
    assert count(before, tc.rms_norm.default) == 0 and count(before, torch.rsqrt) == 3
    assert count(after, tc.rms_norm.default) == 3 and count(after, torch.rsqrt) == 0


def test_fuse_rms_norm_leaves_other_modules_alone(capture_module):
    module = nn.Sequential(TinyLayerScale(HIDDEN))
    _, after = check_same_numbers(capture_module, module, fuse_rms_norm, torch.randn(2, 3, HIDDEN))
    assert count(after, tc.rms_norm.default) == 0 and count(after, torch.rsqrt) == 1


def test_fuse_add_rms_norm(capture_module):
    before, after = check_same_numbers(capture_module, TinyDecoder(), lambda g: fuse_add_rms_norm(fuse_rms_norm(g)),
                                       *inputs())
    # two residual adds feed a norm (post-attention norm, final norm); the first norm reads the input
    assert count(after, tc.add_rms_norm.default) == 2
    assert count(after, tc.rms_norm.default) == 1
    # adds before: 3 eps adds (norms) + 2 residual + 2 RoPE (q and k) + 1 in the toy attention mix
    assert count(before, operator.add) == 8
    assert count(after, operator.add) == 3  # the eps adds are inside the norm ops, the residual ones fused


def test_fuse_add_rms_norm_refuses_broadcast_add(capture_module):
    class BiasThenNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bias, self.norm = nn.Parameter(torch.randn(HIDDEN)), TinyRMSNorm(HIDDEN)

        def forward(self, x):
            return self.norm(x + self.bias)

    _, after = check_same_numbers(capture_module, BiasThenNorm(), lambda g: fuse_add_rms_norm(fuse_rms_norm(g)),
                                  torch.randn(2, 3, HIDDEN))
    assert count(after, tc.add_rms_norm.default) == 0 and count(after, tc.rms_norm.default) == 1


def test_fuse_add_rms_norm_looks_through_a_noop_conversion(capture_module):
    """Nemotron-H's blocks normalize `h.to(norm.weight.dtype)`: a same-dtype `.to` between the residual
    add and the norm goes with the fused nodes."""
    class ConvertThenNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.norm = TinyRMSNorm(HIDDEN)

        def forward(self, x, y):
            h = x + y
            return self.norm(h.to(dtype=self.norm.weight.dtype)) + h

    before, after = check_same_numbers(capture_module, ConvertThenNorm(),
                                       lambda g: fuse_add_rms_norm(fuse_rms_norm(g)),
                                       torch.randn(2, 3, HIDDEN), torch.randn(2, 3, HIDDEN))
    adds = [n for n in before.graph.nodes if call_target(n) == operator.add
            and all(isinstance(a, torch.fx.Node) and a.op == "placeholder" for a in n.args)]
    assert [call_target(u) for u in adds[0].users if u.op == "call_method"] == ["Tensor.to"]  # between add and norm
    assert count(after, tc.add_rms_norm.default) == 1 and count(after, tc.rms_norm.default) == 0
    assert count(after, "Tensor.to") == 0


def test_fuse_linears(capture_module):
    before, after = check_same_numbers(capture_module, TinyDecoder(), fuse_linears, *inputs())
    linear = torch._C._nn.linear
    assert count(before, linear) == 7
    fused = [n for n in after.graph.nodes if call_target(n) == tc.fused_linear.default]
    assert sorted(len(n.args[1]) for n in fused) == [2, 3]  # gate+up, q+k+v
    assert count(after, linear) == 2  # o_proj, down_proj


def test_fuse_linears_refuses_linears_of_different_modules(capture_module):
    class TwoHeads(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.router, self.expert = nn.Linear(HIDDEN, 4, bias=False), TinyMLP()

        def forward(self, x):
            return self.router(x).sum() + self.expert.gate_proj(x).sum()

    _, after = check_same_numbers(capture_module, TwoHeads(), fuse_linears, torch.randn(2, 3, HIDDEN))
    assert count(after, tc.fused_linear.default) == 0


def test_fuse_activation_mul(capture_module):
    before, after = check_same_numbers(capture_module, TinyDecoder(), fuse_activation_mul, *inputs())
    assert count(before, F.silu) == 1 and count(after, F.silu) == 0
    assert count(after, tc.act_mul.default) == 1


def test_fuse_activation_mul_refuses_shared_activation(capture_module):
    class Shared(nn.Module):
        def forward(self, g, u):
            a = F.silu(g)
            return a * u + a

    _, after = check_same_numbers(capture_module, Shared(), fuse_activation_mul, torch.randn(3, 4), torch.randn(3, 4))
    assert count(after, tc.act_mul.default) == 0 and count(after, F.silu) == 1


class Float32SwiGLU(nn.Module):
    """A gated MLP's activation evaluated in float32 and cast back (Beam's `BeamMLP`)."""

    def forward(self, g, u):
        return (F.silu(g.float()) * u.float()).to(g.dtype)


def casts(gm) -> int:
    return sum(1 for n in gm.graph.nodes if n.op == "call_method" and n.target in ("float", "to"))


def test_fuse_activation_mul_absorbs_float32_casts(capture_module):
    g, u = (torch.randn(3, 4, dtype=torch.bfloat16) for _ in range(2))
    before, after = check_same_numbers(capture_module, Float32SwiGLU(), fuse_activation_mul, g, u)
    assert casts(before) == 3 and casts(after) == 0 and count(after, tc.act_mul.default) == 1
    fused = next(n for n in after.graph.nodes if call_target(n) == tc.act_mul.default)
    assert fused.meta["example_value"].dtype == torch.bfloat16  # reads and writes the bf16 tensors


def test_fuse_activation_mul_keeps_casts_with_other_users(capture_module):
    class SharedUpcast(nn.Module):
        def forward(self, g, u):
            g32 = g.float()
            return (F.silu(g32) * u.float()).to(g.dtype), g32.sum()

    g, u = (torch.randn(3, 4, dtype=torch.bfloat16) for _ in range(2))
    _, after = check_same_numbers(capture_module, SharedUpcast(), fuse_activation_mul, g, u)
    assert count(after, tc.act_mul.default) == 1 and casts(after) == 3  # fused in float32, casts kept


class SquaredReLU(nn.Module):
    """transformers' `ReLUSquaredActivation` behind an ungated up / down MLP (Nemotron-H)."""

    def __init__(self) -> None:
        super().__init__()
        self.up, self.down = nn.Linear(HIDDEN, INTER, bias=False), nn.Linear(INTER, HIDDEN, bias=False)

    def forward(self, x):
        return self.down(torch.square(F.relu(self.up(x))))


def test_fuse_squared_relu(capture_module):
    before, after = check_same_numbers(capture_module, SquaredReLU(), fuse_squared_relu, torch.randn(3, HIDDEN))
    assert count(before, F.relu) == 1 and count(before, torch.square) == 1
    assert count(after, F.relu) == 0 and count(after, torch.square) == 0
    fused = [n for n in after.graph.nodes if call_target(n) == tc.activation.default]
    assert len(fused) == 1 and fused[0].args[1] == "relu2"
    assert list(fused[0].args[0].meta["example_value"].shape) == [3, INTER]  # reads the up projection's output


@pytest.mark.parametrize("body", [
    lambda r: torch.square(r) + r,  # the ReLU's output read again
    lambda r: torch.pow(r, 3),  # a cube, not a square
])
def test_fuse_squared_relu_refuses(capture_module, body):
    class Other(nn.Module):
        def forward(self, x):
            return body(F.relu(x))

    _, after = check_same_numbers(capture_module, Other(), fuse_squared_relu, torch.randn(3, 4))
    assert count(after, tc.activation.default) == 0 and count(after, F.relu) == 1


def test_fold_rotary_tables_and_fuse_rope(capture_module):
    before, after = check_same_numbers(capture_module, TinyDecoder(), lambda g: fuse_rope(fold_rotary_tables(g)),
                                       *inputs())
    assert count(after, tc.rotary_table.default) == 1
    ropes = [n for n in after.graph.nodes if call_target(n) == tc.rope.default]
    assert len(ropes) == 1 and len(ropes[0].args[0]) == 2  # q and k rotated by one kernel
    assert count(before, torch.cat) == 3 and count(after, torch.cat) == 0  # rotate_half x2 + table cat


def test_fuse_rope_ignores_unrecognized_helpers(capture_module):
    class OddRotation(nn.Module):
        def forward(self, q, cos, sin):
            return q * cos + torch.cat((-q[..., 4:], q[..., :4]), dim=-1) * sin  # not in a known RoPE helper

    _, after = check_same_numbers(capture_module, OddRotation(), fuse_rope, torch.randn(2, 3, 8), torch.randn(2, 3, 8),
                                  torch.randn(2, 3, 8))
    assert count(after, tc.rope.default) == 0


def apply_rotary_emb(q, k, cos, sin):
    """ERNIE-4.5's kind of helper: the rotation in float32, the result cast back to the inputs' dtype."""
    dtype, half = q.dtype, q.shape[-1] // 2
    q_embed = q.float() * cos + torch.cat((-q[..., half:], q[..., :half]), dim=-1).float() * sin
    k_embed = k.float() * cos + torch.cat((-k[..., half:], k[..., :half]), dim=-1).float() * sin
    return q_embed.to(dtype), k_embed.to(dtype)


class Float32Rotation(nn.Module):
    def forward(self, q, k, cos, sin):
        q, k = apply_rotary_emb(q, k, cos, sin)
        return q * 1, k * 1


def test_fuse_rope_keeps_the_dtype_a_helper_casts_back_to(capture_module):
    """bf16 q/k rotated with float32 tables and cast back (ERNIE-4.5): the fused op returns bf16, as the
    helper did (a float32 result fed the attention float32 keys: ERNIE's KV cache counted twice)."""
    args = (torch.randn(2, 4, 3, 8).bfloat16(), torch.randn(2, 2, 3, 8).bfloat16(), torch.randn(1, 3, 8),
            torch.randn(1, 3, 8))
    _, after = check_same_numbers(capture_module, Float32Rotation(), fuse_rope, *args)
    ropes = [n for n in after.graph.nodes if call_target(n) == tc.rope.default]
    assert ropes and all(r.args[3] == torch.bfloat16 for r in ropes)  # q and k: not joined by shared tables here
    assert {v.dtype for r in ropes for v in r.meta["example_value"]} == {torch.bfloat16}


def _apply_rotary_emb(q, k, freqs_cis, heads_dim):  # a helper name fuse_rope knows (ROPE_FUNCTIONS)
    """DeepSeek-V2's (heads_dim 1: (B, H, S, D)) and Llama 4's (heads_dim 2: (B, S, H, D)) complex-table RoPE."""
    q_ = torch.view_as_complex(q.float().reshape(*q.shape[:-1], -1, 2))
    k_ = torch.view_as_complex(k.float().reshape(*k.shape[:-1], -1, 2))
    table = freqs_cis.unsqueeze(heads_dim)
    return torch.view_as_real(q_ * table).flatten(3).type_as(q), torch.view_as_real(k_ * table).flatten(3).type_as(k)


class ComplexRotation(nn.Module):
    def __init__(self, heads_dim):
        super().__init__()
        self.heads_dim = heads_dim

    def forward(self, q, k, angles):
        freqs_cis = torch.polar(torch.ones_like(angles), angles)  # in the rotary module, outside the helper
        q, k = _apply_rotary_emb(q, k, freqs_cis, self.heads_dim)
        return q * 1, k * 1


@pytest.mark.parametrize("heads_dim", [1, 2])
def test_fuse_rope_complex_table(capture_module, heads_dim):
    """q and k rotated as complex pairs by one e^(i theta) table: one rope op reading the table as the helper
    prepared it (the unsqueeze stays), no complex views left, the same numbers and bf16 outputs."""
    shape_q, shape_k = ((2, 4, 3, 8), (2, 1, 3, 8)) if heads_dim == 1 else ((2, 3, 4, 8), (2, 3, 1, 8))
    args = (torch.randn(*shape_q).bfloat16(), torch.randn(*shape_k).bfloat16(), torch.randn(2, 3, 4))
    before, after = check_same_numbers(capture_module, ComplexRotation(heads_dim), fuse_rope, *args)
    ropes = [n for n in after.graph.nodes if call_target(n) == tc.rope.default]
    assert len(ropes) == 1 and len(ropes[0].args[0]) == 2 and ropes[0].args[2] is None
    assert ropes[0].args[3] == torch.bfloat16
    table = ropes[0].args[1]
    assert table.meta["example_value"].is_complex() and table.meta["example_value"].dim() == 4
    assert count(before, torch.view_as_complex) == 2 and count(after, torch.view_as_complex) == 0
    assert count(after, torch.view_as_real) == 0 and count(after, torch.polar) == 1


def test_a_fusion_that_would_change_a_dtype_is_refused(capture_module):
    """replace_with_op refuses a replacement whose result differs from the output it replaces (here the
    rope op without its dtype: float32 where the region gave bf16) and leaves the graph as it was."""
    from tensor_cast.passes.graph_utils import region_outputs, replace_with_op

    args = (torch.randn(2, 4, 3, 8).bfloat16(), torch.randn(2, 2, 3, 8).bfloat16(), torch.randn(1, 3, 8),
            torch.randn(1, 3, 8))
    gm, _ = capture_module(Float32Rotation(), *args)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    region = [n for n in gm.graph.nodes if n.op in ("call_function", "call_method")
              and n not in placeholders and not (n.target is operator.mul and n.args[1] == 1)]
    outputs = region_outputs(region)
    before = len(list(gm.graph.nodes))
    assert replace_with_op(gm, region, tc.rope.default, (placeholders[:2], placeholders[2], placeholders[3]),
                           outputs) is None
    assert len(list(gm.graph.nodes)) == before


def test_eliminate_noop_views(capture_module):
    class Noops(nn.Module):
        def forward(self, x):
            y = (x * 2).contiguous().to(torch.float32).reshape(x.shape)
            return y.reshape(-1) + y.transpose(0, 1).contiguous().reshape(-1)

    before, after = check_same_numbers(capture_module, Noops(), eliminate_noop_views, torch.randn(3, 4))
    targets_before = [n.target for n in before.graph.nodes if n.op == "call_method"]
    targets_after = [n.target for n in after.graph.nodes if n.op == "call_method"]
    assert targets_before.count("contiguous") == 2 and targets_after.count("contiguous") == 1  # the transposed copy stays
    assert "to" not in targets_after
    assert targets_after.count("reshape") == 2  # the same-shape reshape is gone, the flattening ones stay


def test_eliminate_dead_code(capture_module):
    class Dead(nn.Module):
        def forward(self, x):
            unused = torch.exp(x) * 3  # noqa: F841
            return x + 1

    before, after = check_same_numbers(capture_module, Dead(), eliminate_dead_code, torch.randn(3))
    assert count(after, torch.exp) == 0


def test_full_pipeline_keeps_numbers(capture_module):
    passes = build_pipeline()
    before, after = check_same_numbers(capture_module, TinyDecoder(), lambda g: run_pipeline(g, passes), *inputs())
    kinds = {call_target(n) for n in after.graph.nodes if n.op == "call_function"}
    assert {tc.rms_norm.default, tc.add_rms_norm.default, tc.fused_linear.default, tc.act_mul.default,
            tc.rope.default, tc.rotary_table.default} <= kinds


def test_pass_failure_names_the_pass_and_its_predecessors(capture_module):
    from tensor_cast.passes import PassError

    gm, _ = capture_module(TinyMLP(), torch.randn(2, HIDDEN))

    def broken(g):
        raise ValueError("boom")

    with pytest.raises(PassError, match=r"pass broken failed after \['fuse_linears'\]: ValueError: boom"):
        run_pipeline(gm, [("fuse_linears", fuse_linears), ("broken", broken)])


def test_attention_outside_the_registry_is_refused(capture_module):
    from tensor_cast.errors import UnsupportedModelError
    from tensor_cast.passes.verify_attention_replaced import verify_attention_replaced

    class SelfMadeAttention(nn.Module):
        def forward(self, q, k, v):
            return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    gm, _ = capture_module(SelfMadeAttention(), *(torch.randn(1, 2, 4, 8) for _ in range(3)))
    with pytest.raises(UnsupportedModelError, match="SelfMadeAttention at  computes attention itself|computes attention itself"):
        verify_attention_replaced(gm)
