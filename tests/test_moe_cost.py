"""The MoE ops and their cost: opcheck, FLOPs and bytes derived here from named dimensions, the
experts-hit model (uniform and skewed), symbolic safety."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

import tensor_cast
from tensor_cast.backends.formulas import OpCall, TensorInfo
from tensor_cast.backends.formulas.moe import (
    experts_hit,
    inclusion_probabilities,
    moe_dims,
    routed_counts,
    router_counts,
    routing_stats,
    shared_counts,
)
from tensor_cast.sizes import B, S

tc = torch.ops.tensor_cast
BF16 = 2


def meta(*shape: int, dtype: torch.dtype = torch.bfloat16) -> torch.Tensor:
    return torch.empty(*shape, dtype=dtype, device="meta")


def moe_args(tokens: int, *, experts: int, top_k: int, hidden: int, inter: int, shared: int = 0,
             scheme: str = "none", device: str = "meta") -> tuple:
    def t(*shape: int) -> torch.Tensor:
        return torch.randn(*shape).to(torch.bfloat16) if device == "cpu" else meta(*shape)

    shared_in = [t(shared, hidden), t(shared, hidden)] if shared else []
    shared_out = [t(hidden, shared)] if shared else []
    return (t(tokens, hidden), t(experts, hidden), [], t(experts, 2 * inter, hidden), t(experts, hidden, inter),
            None, None, shared_in, shared_out, top_k, "softmax", "silu", "concat", False, scheme)


# ---- the ops ---------------------------------------------------------------------------------
def test_opcheck_moe_and_routed_experts() -> None:
    torch.manual_seed(0)
    args = moe_args(6, experts=4, top_k=2, hidden=8, inter=4, shared=6, device="cpu")
    torch.library.opcheck(tc.moe.default, args)
    index = torch.tensor([[0, 1], [2, 3], [1, 2]])
    weights = torch.rand(3, 2).to(torch.bfloat16)
    torch.library.opcheck(tc.routed_experts.default,
                          (torch.randn(3, 8).to(torch.bfloat16), index, weights, torch.randn(4, 8, 8).to(torch.bfloat16),
                           torch.randn(4, 8, 4).to(torch.bfloat16), None, None, "silu", "concat", False))


def test_routed_experts_reference_matches_a_per_token_loop() -> None:
    """gpt-oss layout: transposed, interleaved gate/up, biases, clamped SwiGLU."""
    torch.manual_seed(0)
    tokens, hidden, inter, experts = 3, 8, 4, 4
    x = torch.randn(tokens, hidden)
    gate_up, down = torch.randn(experts, hidden, 2 * inter), torch.randn(experts, inter, hidden)
    b1, b2 = torch.randn(experts, 2 * inter), torch.randn(experts, hidden)
    index, weights = torch.tensor([[0, 3], [1, 2], [3, 1]]), torch.rand(tokens, 2)
    out = tc.routed_experts(x, index, weights, gate_up, down, b1, b2, "swiglu_oai", "interleaved", True)
    for i in range(tokens):
        expected = torch.zeros(hidden)
        for slot in range(2):
            e = int(index[i, slot])
            h = x[i] @ gate_up[e] + b1[e]
            g, u = h[::2].clamp(max=7.0), h[1::2].clamp(-7.0, 7.0)
            expected += weights[i, slot] * (((u + 1) * g * torch.sigmoid(1.702 * g)) @ down[e] + b2[e])
        torch.testing.assert_close(out[i], expected, rtol=1e-4, atol=1e-4)


def test_unknown_activation_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown expert activation"):
        tc.routed_experts(meta(2, 8), meta(2, 1, dtype=torch.long), meta(2, 1), meta(4, 8, 8), meta(4, 8, 4),
                          None, None, "swish9", "concat", False)


# ---- experts hit -------------------------------------------------------------------------------
def test_experts_hit_uniform() -> None:
    experts, top_k = 128, 8
    # a given expert is missed by one token with probability 1 - k/E, by T tokens with (1 - k/E)^T
    for tokens in (1, 32, 4096):
        expected = experts * (1 - (1 - top_k / experts) ** tokens)
        assert experts_hit(tokens, experts, top_k) == pytest.approx(expected, rel=1e-12)
    assert experts_hit(1, experts, top_k) == pytest.approx(top_k)
    assert 111 < experts_hit(32, experts, top_k) < 113  # Qwen3-30B-A3B decode at batch 32: ~112 of 128
    assert experts_hit(4096, experts, top_k) == pytest.approx(experts)


def test_experts_hit_is_symbolic_safe() -> None:
    expr = experts_hit(B * S, 128, 8)
    assert isinstance(expr, sympy.Expr) and expr.free_symbols == {B, S}
    value = float(expr.xreplace({B: sympy.Integer(32), S: sympy.Integer(1)}))
    assert value == pytest.approx(128 * (1 - (120 / 128) ** 32), rel=1e-12)
    fast = sympy.lambdify((B, S), expr, "numpy")  # a prefill-sized T must evaluate quickly and exactly
    assert fast(1, 1_000_000) == pytest.approx(128)


def test_skewed_routing_hits_fewer_experts() -> None:
    experts, top_k, skew = 128, 8, 1.0
    q = inclusion_probabilities(experts, top_k, skew)
    assert sum(q) == pytest.approx(top_k)
    assert max(q) <= 1.0 and q[0] == 1.0  # the hottest expert is picked by every token
    uncapped = [i for i, v in enumerate(q) if v < 1]
    a, b = uncapped[0], uncapped[1]
    assert q[a] / q[b] == pytest.approx(((b + 1) / (a + 1)) ** skew)  # Zipf: q_i ∝ i^-skew
    for tokens in (8, 32, 256):
        assert experts_hit(tokens, experts, top_k, skew) < experts_hit(tokens, experts, top_k)
    assert inclusion_probabilities(experts, top_k, 0.0) == pytest.approx([top_k / experts] * experts)


# ---- the formula --------------------------------------------------------------------------------
QWEN3_30B = dict(experts=128, top_k=8, hidden=2048, inter=768)


def _call(tokens: int, **dims) -> OpCall:
    args = moe_args(tokens, **dims)

    def info(v):
        if isinstance(v, torch.Tensor):
            return TensorInfo(tuple(v.shape), v.dtype)
        if isinstance(v, list):
            return [info(x) for x in v]
        return v

    return OpCall(op=tc.moe.default, args=tuple(info(a) for a in args),
                  outputs=(TensorInfo((tokens, dims["hidden"]), torch.bfloat16),))


def test_moe_flops_from_named_dims() -> None:
    t, e, k, h, i = 32, 128, 8, 2048, 768
    cost = tensor_cast.op_cost(tc.moe, *moe_args(t, **QWEN3_30B), device="h100-sxm")
    router = 2 * t * e * h
    routed = 2 * t * k * h * (2 * i) + 2 * t * k * i * h  # gate+up, down: each (token, expert) pair
    assert cost.counts.flops["bf16"] == router + routed
    assert cost.kind == "moe"


def test_moe_reads_the_weights_of_the_experts_hit() -> None:
    t, e, k, h, i = 32, 128, 8, 2048, 768
    call = _call(t, **QWEN3_30B)
    per_expert = 3 * h * i * BF16
    hit = e * (1 - (1 - k / e) ** t)
    pairs = t * k
    # align (int32 ids), gathered rows into GEMM 1, its output, act-and-mul read, GEMM 2 read, sum read
    activations = pairs * 4 + pairs * h * BF16 + pairs * 2 * i * BF16 + pairs * i * BF16 + pairs * h * BF16
    routed = routed_counts(call)
    assert routed.bytes_read == pytest.approx(activations + hit * per_expert, rel=1e-12)
    assert routed.bytes_read > 13 * k * per_expert  # not "k experts' weights": ~112 of them
    assert routing_stats(call).tokens_per_expert == pytest.approx(pairs / hit)
    router = router_counts(call)
    assert router.bytes_read >= e * h * BF16 + t * h * BF16
    assert shared_counts(call).launches == 0 and shared_counts(call).total_flops == 0


def test_shared_experts_are_dense_over_all_tokens() -> None:
    t, h, shared = 16, 2048, 1536
    call = _call(t, experts=16, top_k=2, hidden=h, inter=512, shared=shared)
    counts = shared_counts(call)
    assert counts.flops["bf16"] == 2 * t * h * (2 * shared) + 2 * t * shared * h
    assert counts.bytes_read >= 3 * h * shared * BF16


def test_prefill_reads_every_expert_once() -> None:
    t, e, k, h, i = 8192, 128, 8, 2048, 768
    call = _call(t, **QWEN3_30B)
    pairs = t * k
    activations = pairs * 4 + pairs * h * BF16 + pairs * 2 * i * BF16 + pairs * i * BF16 + pairs * h * BF16
    assert routing_stats(call).experts_hit == pytest.approx(e)
    assert routed_counts(call).bytes_read == pytest.approx(activations + e * 3 * h * i * BF16, rel=1e-12)


def test_skew_changes_bytes_not_flops() -> None:
    uniform = tensor_cast.op_cost(tc.moe, *moe_args(32, **QWEN3_30B), device="h100-sxm")
    skewed = tensor_cast.op_cost(tc.moe, *moe_args(32, **QWEN3_30B), device="h100-sxm", moe_skew=1.2)
    assert skewed.counts.flops == uniform.counts.flops
    assert skewed.bytes < uniform.bytes


def test_quantized_experts_read_scheme_bytes_and_run_at_its_precision() -> None:
    """fp8 (W8A8): expert weights 1 byte each, expert GEMMs at fp8, the router GEMM stays bf16."""
    t, e, k, h, i, shared = 32, 128, 8, 2048, 768, 1024
    dims = dict(QWEN3_30B, shared=shared)
    call = _call(t, **dims, scheme="fp8")
    counts = tensor_cast.op_cost(tc.moe, *moe_args(t, **dims, scheme="fp8"), device="h100-sxm").counts
    assert counts.flops["bf16"] == 2 * t * e * h  # router
    routed_gemm = 2 * t * k * h * (2 * i) + 2 * t * k * i * h
    shared_gemm = 2 * t * h * (2 * shared) + 2 * t * shared * h
    assert counts.flops["fp8"] == routed_gemm + shared_gemm
    hit, pairs, fp8 = e * (1 - (1 - k / e) ** t), t * k, 1
    # align ids, gathered fp8 rows, GEMM 1 output, fp8 intermediate, GEMM 2 output, and the two
    # quantizing kernels (block input: T x H, intermediate: pairs x I), each reading 16-bit values
    activations = pairs * 4 + pairs * h * fp8 + pairs * 2 * i * BF16 + pairs * i * fp8 + pairs * h * BF16
    quantizers = t * h * BF16 + pairs * i * BF16
    assert routed_counts(call).bytes_read == pytest.approx(activations + quantizers + hit * 3 * h * i * fp8, rel=1e-12)
    assert routed_counts(call).launches == 5 + 2
    unquantized = routed_counts(_call(t, **dims))
    assert unquantized.bytes_read > 1.9 * (routed_counts(call).bytes_read - activations - quantizers)


def test_dims_are_read_from_layout() -> None:
    """gpt-oss stores experts transposed: (E, H, 2I) and (E, I, H)."""
    e, h, i = 32, 2880, 2880
    call = OpCall(op=tc.routed_experts.default, args=(
        TensorInfo((7, h), torch.bfloat16), TensorInfo((7, 4), torch.int64), TensorInfo((7, 4), torch.bfloat16),
        TensorInfo((e, h, 2 * i), torch.bfloat16), TensorInfo((e, i, h), torch.bfloat16),
        TensorInfo((e, 2 * i), torch.bfloat16), TensorInfo((e, h), torch.bfloat16), "swiglu_oai", "interleaved", True))
    d = moe_dims(call)
    assert (d.experts, d.top_k, d.hidden, d.intermediate, d.tokens) == (e, 4, h, i, 7)
    pairs = 7 * 4
    gemm = 2 * pairs * h * 2 * i + 2 * pairs * i * h + pairs * 2 * i + pairs * h  # + the two bias adds
    assert routed_counts(call).flops["bf16"] == gemm
    assert math.isclose(routing_stats(call).experts_hit, e * (1 - (1 - 4 / e) ** 7))
