"""Cost rules for linear attention: `tensor_cast::gated_delta_net` (Qwen3-Next / Qwen3.5 layers) and
`tensor_cast::kimi_delta_attention` (Kimi-Linear's KDA layers; at the end of this module).

Dimensions: Hk key heads and Hv value heads of sizes dk and dv (q and k are shared by Hv/Hk value
heads), conv channels Cc = 2·Hk·dk + Hv·dv, conv kernel K; B sequences of S new tokens, T = B·S.
The recurrent state is Hv·dk·dv values per sequence; the conv state (K − 1)·Cc.

Two kernels, as serving engines run them (vLLM / flash-linear-attention):

- **recurrent** (decode-sized steps; `fused_recurrent_gated_delta_rule`), per token and value
  head: decay the state (dk·dv), Sᵀk (2·dk·dv), the delta update k·δᵀ (2·dk·dv), the output Sᵀq
  (2·dk·dv): 7·dk·dv vector FLOPs, plus the q/k L2 norms (3·dk each). The state is read once and
  written once per step, whatever S is.
- **chunked** (prefill; `chunk_gated_delta_rule`, chunks of L = 64 tokens, the WY form), per
  chunk and value head on tensor cores: K·Kᵀ (2·L²·dk), the triangular solve (~L³/3
  multiply-adds), W = T·K and U = T·V (2·L²·(dk + dv)), the intra-chunk Q·Kᵀ and its product
  with the new values (2·L²·(dk + dv)), and three state products W·S, Q·S, Kᵀ·V (6·L·dk·dv). A
  partial last chunk costs a whole one (cdiv(S, L) chunks per sequence). The per-chunk states
  and the W/U blocks round-trip through memory.

Both include the causal conv1d (2·K FLOPs per channel per token, SiLU, reading the conv state and
writing it back in decode) and the gating (g, beta: ~8 vector FLOPs per token per value head).
State bytes are the recurrent + conv state in the activations' dtype (engines' default cache
dtype for these layers is the model dtype).

The counts are the kernels' as flash-linear-attention runs them (the chunked form writes and
reads back its per-chunk states and W/U blocks). The rule returns a `DeltaNetShape` with them:
the (sequence, value head) work items, the FLOPs of one chunk of one head and the bytes a fused
chunked scan moves instead (FlashInfer's, vLLM's default on SM90 / SM100: one CTA per sequence
and value head keeps its state and the chunk's blocks on chip, so only the conv's input and
output, q / k / v, g / beta, the output and the state once cross HBM); an engine section with a
gated DeltaNet model (`backends/efficiency.py`, `attention_gdn_*`) times the layer from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...sizes import cdiv
from ..counts import Counts
from ..kernels import DeltaNetShape
from .kernel_forms import is_short_step, pick_form
from .matmul import gemm_precision
from .registry import OpCall, register

CHUNK = 64  # flash-linear-attention's chunk size for chunk_gated_delta_rule
GATING_FLOPS = 8  # exp, softplus, sigmoid, multiplies per token per value head
SILU_FLOPS = 4


@dataclass(frozen=True)
class DeltaNetDims:
    batch: Any
    q_len: Any
    k_heads: int
    k_dim: int
    v_heads: int
    v_dim: int
    kernel: int

    @property
    def tokens(self) -> Any:
        return self.batch * self.q_len

    @property
    def channels(self) -> int:
        return 2 * self.k_heads * self.k_dim + self.v_heads * self.v_dim

    @property
    def state_elements(self) -> int:
        return self.v_heads * self.k_dim * self.v_dim

    @property
    def conv_state_elements(self) -> int:
        return (self.kernel - 1) * self.channels


def conv_and_gating(d: DeltaNetDims, act: Any, weights_bytes: Any) -> Counts:
    """Causal depthwise conv1d + SiLU over the q/k/v channels, then g and beta."""
    conv_io = d.tokens * d.channels * act
    conv_state = d.batch * d.conv_state_elements * act
    gate_io = d.tokens * d.v_heads * act
    return Counts(
        flops={"vector": d.tokens * d.channels * (2 * d.kernel + SILU_FLOPS) + GATING_FLOPS * d.tokens * d.v_heads},
        bytes_read=conv_io + weights_bytes + conv_state + 2 * gate_io,  # x, weights, conv state; a and b
        bytes_written=conv_io + conv_state + 2 * gate_io,  # conv output, new conv state; g and beta
        launches=2,
    )


def recurrent(d: DeltaNetDims, act: Any, state_item: Any, out_bytes: Any) -> Counts:
    per_token_head = 7 * d.k_dim * d.v_dim + 6 * d.k_dim
    state = d.batch * d.state_elements * state_item
    qkv = d.tokens * d.channels * act
    gates = 2 * d.tokens * d.v_heads * act
    return Counts(flops={"vector": d.tokens * d.v_heads * per_token_head},
                  bytes_read=qkv + gates + state, bytes_written=out_bytes + state, launches=1)


def chunk_flops(d: DeltaNetDims) -> Any:
    """Tensor-core FLOPs of one chunk of one value head: K·Kᵀ, the triangular solve, W = T·K and
    U = T·V, the intra-chunk Q·Kᵀ and its product with the new values, and the three state products."""
    L, dk, dv = CHUNK, d.k_dim, d.v_dim
    return 2 * L * L * dk + L**3 * 2 / 3 + 2 * L * L * (dk + dv) + 2 * L * L * (dk + dv) + 6 * L * dk * dv


def fused_bytes(d: DeltaNetDims, act: Any, state_item: Any, out_bytes: Any, weights_bytes: Any) -> Any:
    """What a fused chunked scan and the conv move: conv input, weights and output, the scan's q / k / v
    (the conv's output read back), g and beta, the output, the state read and written once."""
    qkv = d.tokens * d.channels * act
    return (3 * qkv + weights_bytes + 2 * d.batch * d.conv_state_elements * act + 4 * d.tokens * d.v_heads * act
            + out_bytes + 2 * d.batch * d.state_elements * state_item)


def chunked(d: DeltaNetDims, act: Any, state_item: Any, out_bytes: Any, precision: str) -> Counts:
    chunks = d.batch * cdiv(d.q_len, CHUNK)
    L, dk, dv = CHUNK, d.k_dim, d.v_dim
    per_chunk_head = chunk_flops(d)
    padded_tokens = chunks * L
    state = d.batch * d.state_elements * state_item
    chunk_states = chunks * d.state_elements * state_item  # per-chunk states, written then read
    wy = padded_tokens * d.v_heads * (dk + dv) * act  # W and U blocks, written then read
    qkv = d.tokens * d.channels * act
    gates = 2 * d.tokens * d.v_heads * act
    return Counts(
        flops={precision: chunks * d.v_heads * per_chunk_head,
               "vector": d.tokens * d.v_heads * 6 * dk},  # q/k L2 norms
        bytes_read=qkv + gates + state + chunk_states + wy,
        bytes_written=out_bytes + state + chunk_states + wy,
        launches=6,  # cumsum, K·Kᵀ, solve, WY, states, output
    )


@register(torch.ops.tensor_cast.gated_delta_net.default, kind="attention")
def gated_delta_net(call: OpCall) -> Counts:
    mixed, conv_weight = call.get("mixed_qkv"), call.get("conv_weight")
    batch, q_len, _ = mixed.shape
    dims = DeltaNetDims(batch=batch, q_len=q_len, k_heads=int(call.get("num_k_heads")), k_dim=int(call.get("head_k_dim")),
                        v_heads=int(call.get("num_v_heads")), v_dim=int(call.get("head_v_dim")), kernel=int(conv_weight.shape[-1]))
    act = mixed.itemsize
    small_weights = conv_weight.nbytes + call.get("A_log").nbytes + call.get("dt_bias").nbytes
    short = is_short_step(q_len, call.get("decode_query_len"))
    mixer = pick_form(short, recurrent(dims, act, act, call.out_bytes),
                      chunked(dims, act, act, call.out_bytes, gemm_precision(mixed, mixed)))
    total = conv_and_gating(dims, act, small_weights) + mixer
    held = batch * (dims.state_elements + dims.conv_state_elements) * act
    shape = DeltaNetShape(sequences=batch, q_len=q_len, v_heads=dims.v_heads, chunk=CHUNK, chunk_flops=chunk_flops(dims),
                          fused_bytes=fused_bytes(dims, act, act, call.out_bytes, small_weights), recurrent=short)
    return Counts(flops=total.flops, bytes_read=total.bytes_read, bytes_written=total.bytes_written,
                  state_bytes=held, launches=total.launches, kernel=shape)


# ---- Kimi Delta Attention (KDA) --------------------------------------------------------------
# KDA is the gated delta rule with one decay per (head, key channel) instead of one per head. The
# engines run it as flash-linear-attention's kernels (SGLang `kda_triton.py`: `chunk_kda` for
# extend steps, `fused_sigmoid_gating_delta_rule_update(..., is_kda=True)` for decode, the gate
# fused into the recurrent kernel; vLLM's `kda.py` the same FLA ops with `fused_kda_gate`):
# - gate: g = -exp(A_log)·softplus(g + dt_bias) and beta = sigmoid(b), per (token, head, key
#   channel) for g; its own kernel before the chunked form, fused into the recurrent one;
# - recurrent: the GDN recurrence's 7·dk·dv FLOPs per token and head (the per-row decay costs as the
#   per-head one: one multiply per state element), the state read and written once;
# - chunked: the GDN chunk's tensor-core products (chunk_kda runs the same K·Kᵀ, solve, W / U,
#   intra-chunk and state products, with the decay folded into q and k), plus the per-channel
#   decay's vector work (cumsum and exp(±G) applied to q, k and the chunk's last row:
#   `KDA_DECAY_FLOPS` per token, head and key channel) and g's cumulative sum written and read in
#   float32; per-chunk states and W / U blocks round-trip through memory as for GDN.
# No engine section here has measured KDA kernels: the op carries no `DeltaNetShape` (the GDN
# sections' fused-scan timing is FlashInfer's GDN kernel, not FLA's chunk_kda), so an engine section
# times it as a streaming attention kernel from these counts.
KDA_GATE_FLOPS = 8  # exp(A_log)·softplus(g + dt_bias): add, exp, log1p, multiply, negate; sigmoid for beta
KDA_DECAY_FLOPS = 6  # chunked form: cumsum, exp(G), exp(-G), three multiplies
FLOAT32 = 4


def causal_conv(d: Any, act: Any, weights_bytes: Any, bias: bool = False) -> Counts:
    """A causal depthwise conv1d (+ its bias) and SiLU over `d.channels` per token, reading and writing the
    conv state: KDA's over q / k / v (GDN's, without its gating), Mamba-2's over x / B / C. `d`: any dims
    with `tokens`, `batch`, `channels`, `kernel` and `conv_state_elements`."""
    conv_io = d.tokens * d.channels * act
    conv_state = d.batch * d.conv_state_elements * act
    return Counts(flops={"vector": d.tokens * d.channels * (2 * d.kernel + int(bias) + SILU_FLOPS)},
                  bytes_read=conv_io + weights_bytes + conv_state, bytes_written=conv_io + conv_state, launches=1)


def kda_gate_flops(d: DeltaNetDims) -> Any:
    return KDA_GATE_FLOPS * d.tokens * d.v_heads * (d.k_dim + 1)


def kda_recurrent(d: DeltaNetDims, act: Any, out_bytes: Any) -> Counts:
    """Decode: GDN's recurrence with the per-channel gate fused in (raw g, H·dk per token, and b read)."""
    base = recurrent(d, act, act, out_bytes)
    extra_gates = d.tokens * d.v_heads * (d.k_dim - 1) * act  # `recurrent` reads 2·H per token (GDN's a, b)
    flops = dict(base.flops)
    flops["vector"] = flops.get("vector", 0) + kda_gate_flops(d)
    return Counts(flops=flops, bytes_read=base.bytes_read + extra_gates, bytes_written=base.bytes_written,
                  launches=base.launches)


def kda_chunked(d: DeltaNetDims, act: Any, out_bytes: Any, precision: str) -> Counts:
    """Prefill: the gate kernel (raw g and b in, float32 g and beta out), then chunk_kda: GDN's chunked
    form plus the per-channel decay's vector work and g's chunk-local cumsum (float32, written and read)."""
    decay = d.tokens * d.v_heads * d.k_dim
    gate = Counts(flops={"vector": kda_gate_flops(d)},
                  bytes_read=(decay + d.tokens * d.v_heads) * act,
                  bytes_written=(decay + d.tokens * d.v_heads) * FLOAT32, launches=1)
    base = chunked(d, act, act, out_bytes, precision)
    flops = dict(base.flops)
    flops["vector"] = flops.get("vector", 0) + KDA_DECAY_FLOPS * decay
    # `chunked` reads 2·H act-sized gate values per token (GDN's g, beta): here float32 g (H·dk) and beta
    gates = (decay + d.tokens * d.v_heads) * FLOAT32 - 2 * d.tokens * d.v_heads * act
    scan = Counts(flops=flops, bytes_read=base.bytes_read + gates + decay * FLOAT32,
                  bytes_written=base.bytes_written + decay * FLOAT32, launches=base.launches + 1)  # + the cumsum
    return gate + scan


@register(torch.ops.tensor_cast.kimi_delta_attention.default, kind="attention")
def kimi_delta_attention(call: OpCall) -> Counts:
    q, conv_weight = call.get("q"), call.get("conv_weight")
    batch, q_len, _ = q.shape
    heads, dim = int(call.get("num_heads")), int(call.get("head_dim"))
    dims = DeltaNetDims(batch=batch, q_len=q_len, k_heads=heads, k_dim=dim, v_heads=heads, v_dim=dim,
                        kernel=int(conv_weight.shape[-1]))
    act = q.itemsize
    small_weights = conv_weight.nbytes + call.get("A_log").nbytes + call.get("dt_bias").nbytes
    short = is_short_step(q_len, call.get("decode_query_len"))
    mixer = pick_form(short, kda_recurrent(dims, act, call.out_bytes),
                      kda_chunked(dims, act, call.out_bytes, gemm_precision(q, q)))
    total = causal_conv(dims, act, small_weights) + mixer
    held = batch * (dims.state_elements + dims.conv_state_elements) * act
    return Counts(flops=total.flops, bytes_read=total.bytes_read, bytes_written=total.bytes_written,
                  state_bytes=held, launches=total.launches)
