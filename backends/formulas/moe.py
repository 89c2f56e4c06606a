"""MoE cost rules: `tensor_cast::moe` (a whole MoE block) and `tensor_cast::routed_experts`.

Counted as the kernels a serving engine runs for a MoE block (vLLM `fused_moe`, SGLang):
- router (`router_counts`): the router GEMM (T x E x H, logits kept in fp32; H the width of
  `router_input` when given: LatentMoE's experts read latent rows of width L, `hidden`) and one fused
  scoring + top-k kernel (softmax/sigmoid, correction bias, grouped top-k) — 2 launches;
- routed experts (`routed_counts`): align/sort of the T·k (token, expert) pairs, grouped GEMM 1
  (gate+up) reading each chosen token row once per pair and the weights of every expert hit,
  activation-and-mul, grouped GEMM 2 (down, the routing weight applied in its epilogue), and the
  sum over the k results per token — 5 launches;
- shared experts (`shared_counts`): a fused gate+up GEMM (with the (1, H) shared gate when the
  family has one), act-and-mul, down GEMM, and the add onto the routed output — dense GEMMs over
  all T tokens.
The three parts are separate helpers so a deployment pass (expert parallelism: all_to_all
around the routed part, overlapped with the shared experts) can cost and schedule them apart;
`routed_expert_counts` takes explicit pair and expert-hit counts for per-rank costing.

Routing is static: each token picks k distinct experts. With uniform popularity a given expert
is missed by one token with probability 1 - k/E, so the expected number of experts hit by T
tokens is E·(1 - (1 - k/E)^T) (Qwen3-30B-A3B at decode batch 32: ~112 of 128; reading only k
experts' weights is the classic decode under-count). `skew` > 0 (the cost knob
`CostKnobs.moe_skew`, not a graph argument) models hot experts: expert i
(i = 1..E) is picked with Zipf weight i^-skew, per-token inclusion probabilities q_i = min(1,
c·i^-skew) with Σ q_i = k, and Σ_i 1 - (1 - q_i)^T experts are hit. Bytes read are the weights
of the experts hit; FLOPs do not depend on the routing. `routing_stats(call)` gives the
per-expert GEMM M (T·k / experts hit, and the hottest expert's T·q_max) for efficiency models.

Expert parallelism (`ep`, `ep_dp`, set by `passes/insert_ep_collectives.py`): the routed experts
are split over `ep` ranks, and the tokens of `ep_dp` attention-DP replicas (N = ep_dp·T) are
routed over them. One rank costs its own share of the routed work: the (token, expert) pairs its
E/ep experts receive and the weights of those of them that are hit (`ep_rank_routing`). Experts
are placed round-robin by popularity (rank r holds the r-th, (r+ep)-th, ... most popular: the
balance an expert-placement balancer approaches without replicating experts); the most loaded
rank, rank 0, sets the step time and is the one costed. Uniform routing: N·k/ep pairs (exactly),
(E/ep)·(1 - (1 - k/E)^N) experts hit. The router and the shared experts run on the rank's own T
tokens. With ep = 1 nothing changes.

Quantization (`scheme`, set by `passes/quantize_moe.py`): routed and shared expert weights are
read at the scheme's stored bytes per element (scales included) and their GEMMs run at its
precision; schemes that quantize activations add the quantizing kernels vLLM's fused MoE runs
(the block input before the gate+up GEMMs, the activation before the down GEMM) and the GEMMs
read the narrow activations. The router GEMM stays in the model dtype.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any

import sympy
import torch

from ...deployment.quantization import QuantScheme
from ...deployment.quantization import scheme as lookup_scheme
from ...sizes import numel
from ..counts import ZERO, Counts
from ..kernels import MoEShape
from .matmul import gemm_precision
from .norm_activation import ACTIVATION_FLOPS
from .registry import OpCall, TensorInfo, register

tc = torch.ops.tensor_cast

ROUTER_LOGIT_BYTES = 4  # router logits / scores are kept in fp32 for the top-k
TOPK_OUTPUT_BYTES = 4 + 4  # per (token, slot): fp32 weight + int32 expert id
SCORE_FLOPS_PER_LOGIT = 5  # exp (or sigmoid), sum, normalize, compare for the top-k
PAIR_INDEX_BYTES = 4  # int32 sorted (token, expert) ids written by the align kernel
SWIGLU_OAI_FLOPS = 8  # clamp x2, mul by alpha, sigmoid, mul, add 1, mul


@dataclass(frozen=True)
class MoEDims:
    """The sizes one MoE call is costed with (ints or expressions in B, S, C)."""

    tokens: Any  # T = tokens in the step (B·S)
    experts: int  # E
    top_k: int  # k
    hidden: int  # H
    intermediate: int  # I (per expert)
    gated: bool
    activation: str
    skew: float
    scheme: str = "none"  # the experts' weight quantization (deployment/quantization.py), or "none"
    shared_scheme: str = ""  # the shared experts' when it differs (DeepSeek-V4: FP8 beside FP4 experts); "": scheme
    ep: int = 1  # ranks the routed experts are split over (expert parallelism)
    ep_dp: int = 1  # attention-DP replicas whose tokens are routed over those ranks

    @property
    def quant(self) -> QuantScheme | None:
        return None if self.scheme == "none" else lookup_scheme(self.scheme)

    @property
    def shared_quant(self) -> QuantScheme | None:
        name = self.shared_scheme or self.scheme
        return None if name == "none" else lookup_scheme(name)


def moe_dims(call: OpCall) -> MoEDims:
    """Read E, k, H, I, T and the layout from a `moe` or `routed_experts` call."""
    hidden, gate_up, down = call.get("hidden"), call.get("gate_up"), call.get("down")
    transposed, gate = bool(call.get("transposed")), str(call.get("gate"))
    experts = gate_up.shape[0]
    first_out = gate_up.shape[2] if transposed else gate_up.shape[1]
    intermediate = down.shape[1] if transposed else down.shape[2]
    if gate != "none" and first_out != 2 * intermediate:
        raise ValueError(f"gate_up has {first_out} rows per expert but down has {intermediate} inputs")
    ep, ep_dp, shared_scheme = 1, 1, ""
    if call.op is tc.moe.default:
        top_k, skew, scheme = int(call.get("top_k")), float(call.knobs.moe_skew), str(call.get("scheme"))
        ep, ep_dp, shared_scheme = int(call.get("ep")), int(call.get("ep_dp")), str(call.get("shared_scheme"))
    else:
        top_k, skew, scheme = call.get("top_k_index").shape[-1], 0.0, "none"
    return MoEDims(tokens=numel(hidden.shape[:-1]), experts=experts, top_k=int(top_k), hidden=hidden.shape[-1],
                   intermediate=intermediate, gated=gate != "none", activation=str(call.get("activation")),
                   skew=skew, scheme=scheme, shared_scheme=shared_scheme, ep=ep, ep_dp=ep_dp)


# ---- routing -------------------------------------------------------------------------------
@lru_cache(maxsize=256)
def inclusion_probabilities(experts: int, top_k: int, skew: float) -> tuple[float, ...]:
    """Per-token probability that expert i is among its k, for Zipf(skew) popularity (sums to k).

    Water-filling: q_i = min(1, c·i^-skew) with c chosen so that Σ q_i = k (an expert cannot be
    picked twice by one token). skew = 0 gives k/E for every expert.
    """
    if not 0 < top_k <= experts:
        raise ValueError(f"top_k={top_k} must be in 1..{experts}")
    if skew < 0:
        raise ValueError(f"skew must be >= 0, got {skew}")
    weights = [(i + 1) ** -skew for i in range(experts)]
    capped: set[int] = set()
    while True:
        free = [i for i in range(experts) if i not in capped]
        if not free:  # top_k = experts: every token picks every expert
            return (1.0,) * experts
        scale = (top_k - len(capped)) / sum(weights[i] for i in free)
        newly = {i for i in free if scale * weights[i] >= 1}
        if not newly:
            return tuple(1.0 if i in capped else scale * weights[i] for i in range(experts))
        capped |= newly


def experts_hit(tokens: Any, experts: int, top_k: int, skew: float = 0.0) -> Any:
    """Expected number of distinct experts chosen by `tokens` tokens (symbolic-safe in tokens)."""
    if skew == 0:
        miss = (experts - top_k) / experts
        # a Float base: an exact Rational**T would expand to a T-digit fraction at evaluation
        return experts * (1 - (sympy.Float(miss) if isinstance(tokens, sympy.Basic) else miss) ** tokens)
    return _hit(tokens, inclusion_probabilities(experts, top_k, skew))


def _hit(tokens: Any, probabilities: tuple[float, ...]) -> Any:
    """Expected number of these experts (per-token inclusion probabilities) hit by `tokens` tokens."""
    total: Any = 0
    for q in probabilities:
        if q >= 1:
            total = total + 1
        else:
            miss = sympy.Float(1 - q) if isinstance(tokens, sympy.Basic) else 1 - q
            total = total + (1 - miss ** tokens)
    return total


# ---- expert parallelism: one rank's share (see the module docstring) ---------------------------
def hottest_rank_probabilities(experts: int, top_k: int, skew: float, ep: int) -> tuple[float, ...]:
    """Inclusion probabilities of the E/ep experts on the most loaded of `ep` ranks (placement
    round-robin by popularity: rank 0 holds the 1st, (ep+1)-th, (2ep+1)-th ... most popular)."""
    if ep < 1 or experts % ep:
        raise ValueError(f"ep={ep} must divide the {experts} experts")
    return inclusion_probabilities(experts, top_k, skew)[::ep]


def ep_rank_share(experts: int, top_k: int, skew: float, ep: int) -> Any:
    """Fraction of all (token, expert) pairs the most loaded rank receives (uniform: exactly 1/ep)."""
    if ep == 1:
        return 1
    if skew == 0:
        return sympy.Rational(1, ep)
    return sum(hottest_rank_probabilities(experts, top_k, skew, ep)) / top_k


def ep_rank_routing(tokens: Any, experts: int, top_k: int, skew: float, ep: int) -> tuple[Any, Any]:
    """(pairs, experts hit) on the most loaded rank when `tokens` tokens are routed over `ep` ranks."""
    pairs = tokens * top_k * ep_rank_share(experts, top_k, skew, ep)
    if ep == 1:
        return pairs, experts_hit(tokens, experts, top_k, skew)
    if skew == 0:
        return pairs, experts_hit(tokens, experts, top_k) / ep
    return pairs, _hit(tokens, hottest_rank_probabilities(experts, top_k, skew, ep))


@dataclass(frozen=True)
class RoutingStats:
    """What the routing does to the grouped GEMMs: how many experts run, and their M."""

    tokens: Any
    pairs: Any  # T·k (token, expert) rows through the grouped GEMMs (EP: this rank's share)
    experts_hit: Any  # (EP: of this rank's E/ep experts)
    tokens_per_expert: Any  # mean M of a hit expert's GEMM: pairs / experts_hit
    hottest_expert_tokens: Any  # expected M of the most popular expert: N·q_max (N = ep_dp·T)


def routing_stats(call: OpCall) -> RoutingStats:
    d = moe_dims(call)
    routed = d.tokens * d.ep_dp  # the tokens routed over the experts this rank's are among
    pairs, hit = ep_rank_routing(routed, d.experts, d.top_k, d.skew, d.ep)
    q_max = max(inclusion_probabilities(d.experts, d.top_k, d.skew))
    return RoutingStats(tokens=d.tokens, pairs=pairs, experts_hit=hit, tokens_per_expert=pairs / hit,
                        hottest_expert_tokens=routed * q_max)


# ---- the three parts -------------------------------------------------------------------------
def _activation_flops(d: MoEDims) -> int:
    if d.activation == "swiglu_oai":
        return SWIGLU_OAI_FLOPS
    if d.activation == "swiglu_limit":  # SiLU gate with both inputs clamped (DeepSeek-V4): 3 compares beyond silu·up
        return ACTIVATION_FLOPS["silu"] + 1 + 3
    return ACTIVATION_FLOPS.get(d.activation, 4) + (1 if d.gated else 0)


def weight_bytes(weights: list[TensorInfo], quant: QuantScheme | None) -> Any:
    """Stored bytes of weight matrices: the scheme's bytes per element (scales included), else the dtype's."""
    if quant is None:
        return sum((w.nbytes for w in weights), 0)
    return sum((w.numel for w in weights), 0) * quant.weight_bytes


def _quantize_activation(rows: Any, width: Any, itemsize: Any, quant: QuantScheme | None) -> tuple[Counts, Any]:
    """(the quantizing kernel, bytes per element the GEMM then reads) for `rows` x `width` activations."""
    if quant is None or quant.activation is None:
        return ZERO, itemsize
    q = sympy.Rational(quant.activation.bits, 8)
    return Counts(flops={"vector": 4 * rows * width}, bytes_read=rows * width * itemsize,
                  bytes_written=rows * width * q), q


def routed_expert_counts(d: MoEDims, *, pairs: Any, experts_hit: Any, act: TensorInfo, gate_up: TensorInfo,
                         down: TensorInfo, gate_up_bias: TensorInfo | None, down_bias: TensorInfo | None,
                         out_tokens: Any, in_tokens: Any = None) -> Counts:
    """Routed experts over `pairs` (token, expert) rows touching `experts_hit` experts' weights.

    `in_tokens` rows (default `out_tokens`) are quantized when the scheme quantizes activations;
    `out_tokens` rows are written by the final sum over the k slots.
    """
    quant = d.quant
    n1 = 2 * d.intermediate if d.gated else d.intermediate
    biases = [b for b in (gate_up_bias, down_bias) if b is not None]
    per_expert = (weight_bytes([gate_up, down], quant) + sum((b.nbytes for b in biases), 0)) / d.experts
    a = act.itemsize
    quantize_in, q_in = _quantize_activation(out_tokens if in_tokens is None else in_tokens, d.hidden, a, quant)
    quantize_mid, q_mid = _quantize_activation(pairs, d.intermediate, a, quant)
    bias_flops = pairs * (n1 if gate_up_bias is not None else 0) + pairs * (d.hidden if down_bias is not None else 0)
    precision = quant.precision if quant is not None else gemm_precision(act, gate_up)
    gemm_flops = 2 * pairs * d.hidden * n1 + 2 * pairs * d.intermediate * d.hidden + bias_flops
    vector = (_activation_flops(d) * pairs * d.intermediate  # act(gate) * up
              + pairs * d.hidden  # routing weight in the down GEMM's epilogue
              + pairs * d.hidden)  # sum over the k slots
    read = (pairs * PAIR_INDEX_BYTES  # align: expert ids
            + pairs * d.hidden * q_in + pairs * n1 * a + pairs * d.intermediate * q_mid + pairs * d.hidden * a
            + experts_hit * per_expert)
    written = (pairs * PAIR_INDEX_BYTES + pairs * n1 * a + pairs * d.intermediate * a + pairs * d.hidden * a
               + out_tokens * d.hidden * a)
    kernels = Counts(flops={precision: gemm_flops, "vector": vector}, bytes_read=read, bytes_written=written,
                     launches=5)
    return kernels + quantize_in + quantize_mid


MOE_BINS = 8  # popularity bins of a skewed routing's experts in the kernel shape (padding per bin)


def rank_bins(experts: int, top_k: int, skew: float, ep: int) -> tuple[tuple[int, float], ...]:
    """This rank's experts as (count, per-token inclusion probability) bins, most popular first:
    one bin under uniform routing; under skew the rank's experts (`hottest_rank_probabilities`)
    in up to `MOE_BINS` contiguous popularity bins, each at its members' mean probability."""
    if skew == 0:
        return ((experts // ep, top_k / experts),)
    q = hottest_rank_probabilities(experts, top_k, skew, ep)
    size = -(-len(q) // MOE_BINS)
    chunks = [q[i:i + size] for i in range(0, len(q), size)]
    return tuple((len(c), sum(c) / len(c)) for c in chunks)


def moe_shape(d: MoEDims, pairs: Any, act: TensorInfo, gate_up: TensorInfo, down: TensorInfo) -> MoEShape:
    """The routed experts' grouped-GEMM shape (`backends/moe_tiles.py` pads it to the kernel's tiles)."""
    n1 = 2 * d.intermediate if d.gated else d.intermediate
    variant = d.scheme if d.scheme != "none" else gemm_precision(act, gate_up)
    return MoEShape(routed=d.tokens * d.ep_dp, bins=rank_bins(d.experts, d.top_k, d.skew, d.ep), pairs=pairs,
                    experts=d.experts // d.ep, row_flops=2 * d.hidden * n1 + 2 * d.intermediate * d.hidden,
                    hidden=d.hidden, intermediate=d.intermediate,
                    expert_bytes=weight_bytes([gate_up, down], d.quant) / d.experts, variant=variant, top_k=d.top_k,
                    ep=d.ep, act_bytes=act.itemsize)


def routed_counts(call: OpCall) -> Counts:
    """The routed experts of a `moe` or `routed_experts` call on one device: all E experts, or
    under expert parallelism the most loaded rank's E/ep (`routing_stats`), with their kernel shape."""
    d = moe_dims(call)
    stats = routing_stats(call)
    counts = routed_expert_counts(
        d, pairs=stats.pairs, experts_hit=stats.experts_hit, act=call.get("hidden"), gate_up=call.get("gate_up"),
        down=call.get("down"), gate_up_bias=call.get("gate_up_bias"), down_bias=call.get("down_bias"),
        out_tokens=d.tokens)
    return replace(counts, kernel=moe_shape(d, stats.pairs, call.get("hidden"), call.get("gate_up"), call.get("down")))


def router_counts(call: OpCall) -> Counts:
    """Router GEMM (T x E x H) and the fused scoring + top-k kernel of a `moe` call (H: the width the router
    scores, the hidden states' even where the experts read LatentMoE's latent rows)."""
    d = moe_dims(call)
    x = call.get("hidden") if call.get("router_input") is None else call.get("router_input")
    weight, extras = call.get("router_weight"), call.get("router_extra") or []
    logits = d.tokens * d.experts
    gemm = Counts(flops={gemm_precision(x, weight): 2 * logits * x.shape[-1]}, bytes_read=x.nbytes + weight.nbytes,
                  bytes_written=logits * ROUTER_LOGIT_BYTES)
    topk = Counts(flops={"vector": SCORE_FLOPS_PER_LOGIT * logits},
                  bytes_read=logits * ROUTER_LOGIT_BYTES + sum((e.nbytes for e in extras), 0),
                  bytes_written=d.tokens * d.top_k * TOPK_OUTPUT_BYTES)
    return gemm + topk


def shared_counts(call: OpCall) -> Counts:
    """Shared experts of a `moe` call: dense gated MLP over all tokens, added to the routed output.

    Zero launches when the block has no shared experts.
    """
    shared_in, shared_out = call.get("shared_in") or [], call.get("shared_out") or []
    if not shared_out:
        return Counts(launches=0)
    d = moe_dims(call)
    x, t, quant = call.get("hidden"), d.tokens, d.shared_quant
    a = x.itemsize
    hidden, inner = shared_out[0].shape[0], shared_out[0].shape[1]
    scalar_gates = [w for w in shared_in if w.shape[0] == 1]
    rows_in = sum((w.shape[0] for w in shared_in), 0)
    precision = quant.precision if quant is not None else gemm_precision(x, shared_out[0])
    quantize_in, q_in = _quantize_activation(t, hidden, a, quant)
    quantize_mid, q_mid = _quantize_activation(t, inner, a, quant)
    up = Counts(flops={precision: 2 * t * hidden * rows_in},
                bytes_read=t * hidden * q_in + weight_bytes(shared_in, quant), bytes_written=t * rows_in * a)
    act = Counts(flops={"vector": (ACTIVATION_FLOPS.get(d.activation, 4) + 1) * t * inner},
                 bytes_read=2 * t * inner * a, bytes_written=t * inner * a)
    down = Counts(flops={precision: 2 * t * inner * hidden},
                  bytes_read=t * inner * q_mid + weight_bytes(shared_out, quant), bytes_written=t * hidden * a)
    # The add onto the routed output (with the sigmoid shared gate when present): one kernel.
    combine = Counts(flops={"vector": t * hidden * (1 + 5 * len(scalar_gates))},
                     bytes_read=2 * t * hidden * a + t * len(scalar_gates) * a, bytes_written=t * hidden * a)
    return up + act + down + combine + quantize_in + quantize_mid


@register(tc.moe.default, kind="moe")
def moe(call: OpCall) -> Counts:
    """A whole MoE block: router + routed experts + shared experts (the routed experts' kernel shape)."""
    routed = routed_counts(call)
    return replace(router_counts(call) + routed + shared_counts(call), kernel=routed.kernel)


@register(tc.routed_experts.default, kind="moe")
def routed_experts(call: OpCall) -> Counts:
    """Routed experts alone (a block `replace_moe` left as it is: its router is costed op by op)."""
    return routed_counts(call)
