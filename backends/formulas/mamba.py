"""Cost rules for the Mamba-2 mixer: `tensor_cast::mamba2_scan` and its output norm
`tensor_cast::gated_rms_norm` (Nemotron-H / Nemotron 3 Mamba layers); and for the Mamba-1 mixer's conv
and scan, `tensor_cast::mamba1_conv` / `tensor_cast::mamba1_scan` (Jamba; "Mamba-1" at the end).

Dimensions: H heads of P channels, a state of N per channel, B and C in G groups, conv channels
Cc = H·P + 2·G·N, conv kernel K; B sequences of S new tokens, T = B·S; chunks of L tokens. The
recurrent state is H·P·N values per sequence (in the state dtype), the conv state (K − 1)·Cc (in the
activations' dtype).

The kernels are the ones vLLM's `MambaMixer2` launches (mamba_ssm's Triton kernels, ported):

- **conv** (`causal_conv1d_fn` in prefill, `causal_conv1d_update` in decode): 2·K FLOPs per channel
  and token plus SiLU and the bias; the conv state read and written.
- **recurrent** (decode-sized steps; `selective_state_update`), per token, head and state element:
  the decay (1), dt·x·B (2), the add (1) and the C contraction (2): 6·P·N, plus the D skip (2·P) and
  the discretization (softplus, exp: ~10 per head). The state is read once and written once per step.
- **chunked** (prefill; `mamba_chunk_scan_combined`, five kernels), per chunk of L tokens:
  `chunk_cumsum` (dt's softplus and A·dt's cumulative sum, float32), `bmm_chunk` (C·Bᵀ per group:
  2·L²·N on tensor cores, written in float32), `chunk_state` (each chunk's end state per head:
  2·L·N·P, written in float32), `state_passing` (the chunk states chained, sequential over chunks:
  2·P·N per chunk and head, the initial state read and the final one written in the state dtype) and
  `chunk_scan` (the output: the masked C·Bᵀ times dt·x, 2·L²·P, plus C times the chunk's start
  state, 2·L·N·P, per head). A partial last chunk costs a whole one (cdiv(S, L) chunks per sequence).
  Per-chunk states, C·Bᵀ and the float32 dt / cumsum round-trip through memory; B and C are read
  once per group (their reuse across a group's heads is on chip).

No engine section has measured Mamba-2 kernels: the rule carries no kernel shape, so an engine section
times the op as a streaming attention kernel from these counts.

Mamba-1 (vLLM's `MambaMixer`, mamba_ssm's kernels): D inner channels, a state of N per channel, one B
and C per token for all channels. `mamba1_conv` is `causal_conv1d_fn` / `causal_conv1d_update` over the D
channels (the conv state (K − 1)·D held per sequence). `mamba1_scan` is one kernel in both forms
(`selective_scan_fn` in prefill keeps the state on chip across the sequence, `selective_state_update` in
decode): per token and channel the discretization (softplus of dt + bias: DISCRETIZE_FLOPS), the D skip
(2) and the SiLU gate (SILU_FLOPS + 1); per token, channel and state element exp(dt·A) (2), the decay
and the dt·x·B update (3) and the C contraction (2). x, dt, z, B and C are read once, y written once,
the state (D·N in the state dtype) read and written once per sequence and step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...sizes import cdiv
from ..counts import Counts
from .kernel_forms import is_short_step, pick_form
from .linear_attention import SILU_FLOPS, causal_conv
from .matmul import gemm_precision
from .norm_activation import streaming
from .registry import OpCall, register

DISCRETIZE_FLOPS = 10  # softplus(dt + bias), clamp, exp(dt·A) per token and head
FLOAT32 = 4
CHUNKED_LAUNCHES = 5  # chunk_cumsum, bmm_chunk, chunk_state, state_passing, chunk_scan
GATED_NORM_FLOPS = SILU_FLOPS + 1 + 4  # silu(gate), the multiply, the RMS norm with its weight


@dataclass(frozen=True)
class MambaDims:
    batch: Any
    q_len: Any
    heads: int
    head_dim: int
    state: int
    groups: int
    kernel: int
    chunk: int

    @property
    def tokens(self) -> Any:
        return self.batch * self.q_len

    @property
    def channels(self) -> int:
        return self.heads * self.head_dim + 2 * self.groups * self.state

    @property
    def state_elements(self) -> int:
        return self.heads * self.head_dim * self.state

    @property
    def conv_state_elements(self) -> int:
        return (self.kernel - 1) * self.channels


def recurrent(d: MambaDims, act: Any, state_item: Any, out_bytes: Any) -> Counts:
    """`selective_state_update`: the state read and written once; x, B, C and dt read, y written."""
    per_token_head = 6 * d.head_dim * d.state + 2 * d.head_dim + DISCRETIZE_FLOPS
    state = d.batch * d.state_elements * state_item
    inputs = d.tokens * (d.channels + d.heads) * act  # x, B, C and dt
    return Counts(flops={"vector": d.tokens * d.heads * per_token_head},
                  bytes_read=inputs + state, bytes_written=out_bytes + state, launches=1)


def chunked(d: MambaDims, act: Any, state_item: Any, out_bytes: Any, precision: str) -> Counts:
    """`mamba_chunk_scan_combined`'s five kernels (module docstring)."""
    chunks = d.batch * cdiv(d.q_len, d.chunk)
    padded = chunks * d.chunk
    L, H, P, N, G = d.chunk, d.heads, d.head_dim, d.state, d.groups
    x = padded * H * P * act
    bc = padded * G * N * act  # B or C
    dt = padded * H * FLOAT32  # dt after softplus, or A·dt's cumulative sum
    cb = chunks * G * L * L * FLOAT32
    chunk_states = chunks * H * P * N * FLOAT32
    state = d.batch * d.state_elements * state_item
    tensor = chunks * (G * 2 * L * L * N + H * (2 * L * N * P + 2 * L * L * P + 2 * L * N * P))
    vector = (d.tokens * H * DISCRETIZE_FLOPS + chunks * H * (2 * P * N + 3 * L * L)  # passing; decay mask
              + d.tokens * H * 2 * P)  # D skip
    reads = (d.tokens * H * act  # chunk_cumsum: raw dt
             + 2 * bc  # bmm_chunk: B and C
             + x + bc + 2 * dt  # chunk_state: x, B, dt, cumsum
             + chunk_states + state  # state_passing: chunk states, initial state
             + cb + x + bc + chunk_states + 2 * dt)  # chunk_scan: C·Bᵀ, x, C, start states, dt, cumsum
    writes = 2 * dt + cb + chunk_states + chunk_states + state + out_bytes
    return Counts(flops={precision: tensor, "vector": vector}, bytes_read=reads, bytes_written=writes,
                  launches=CHUNKED_LAUNCHES)


@register(torch.ops.tensor_cast.mamba2_scan.default, kind="attention")
def mamba2_scan(call: OpCall) -> Counts:
    xbc, conv_weight, conv_bias = call.get("xbc"), call.get("conv_weight"), call.get("conv_bias")
    batch, q_len, _ = xbc.shape
    dims = MambaDims(batch=batch, q_len=q_len, heads=int(call.get("num_heads")), head_dim=int(call.get("head_dim")),
                     state=int(call.get("state_size")), groups=int(call.get("n_groups")),
                     kernel=int(conv_weight.shape[-1]), chunk=int(call.get("chunk_size")))
    act = xbc.itemsize
    state_item = call.get("state_dtype").itemsize
    small_weights = (conv_weight.nbytes + (conv_bias.nbytes if conv_bias is not None else 0)
                     + call.get("A_log").nbytes + call.get("D").nbytes + call.get("dt_bias").nbytes)
    short = is_short_step(q_len, call.get("decode_query_len"))
    scan = pick_form(short, recurrent(dims, act, state_item, call.out_bytes),
                     chunked(dims, act, state_item, call.out_bytes, gemm_precision(xbc, xbc)))
    total = causal_conv(dims, act, small_weights, bias=conv_bias is not None) + scan
    held = batch * (dims.state_elements * state_item + dims.conv_state_elements * act)
    return Counts(flops=total.flops, bytes_read=total.bytes_read, bytes_written=total.bytes_written,
                  state_bytes=held, launches=total.launches)


@register(torch.ops.tensor_cast.gated_rms_norm.default, kind="norm")
def gated_rms_norm(call: OpCall) -> Counts:
    """One kernel: x, the gate and the weight read once, the normed product written once."""
    return streaming(call, GATED_NORM_FLOPS)


# ---- Mamba-1 ---------------------------------------------------------------------------------------
MAMBA1_STATE_FLOPS = 7  # per token, channel and state element: exp(dt·A) (2), decay + dt·x·B update (3), C (2)
MAMBA1_CHANNEL_FLOPS = DISCRETIZE_FLOPS + 2 + SILU_FLOPS + 1  # softplus(dt + bias), D skip, the SiLU gate


@dataclass(frozen=True)
class ConvDims:
    batch: Any
    q_len: Any
    channels: int
    kernel: int

    @property
    def tokens(self) -> Any:
        return self.batch * self.q_len

    @property
    def conv_state_elements(self) -> int:
        return (self.kernel - 1) * self.channels


@register(torch.ops.tensor_cast.mamba1_conv.default, kind="attention")
def mamba1_conv(call: OpCall) -> Counts:
    x, weight, bias = call.get("x"), call.get("conv_weight"), call.get("conv_bias")
    batch, q_len, channels = x.shape
    dims = ConvDims(batch=batch, q_len=q_len, channels=int(channels), kernel=int(weight.shape[-1]))
    weights = weight.nbytes + (bias.nbytes if bias is not None else 0)
    conv = causal_conv(dims, x.itemsize, weights, bias=bias is not None)
    return Counts(flops=conv.flops, bytes_read=conv.bytes_read, bytes_written=conv.bytes_written,
                  state_bytes=batch * dims.conv_state_elements * x.itemsize, launches=conv.launches)


@register(torch.ops.tensor_cast.mamba1_scan.default, kind="attention")
def mamba1_scan(call: OpCall) -> Counts:
    x, a_log = call.get("x"), call.get("A_log")
    batch, q_len, channels = x.shape
    state_size = int(a_log.shape[1])
    tokens, act = batch * q_len, x.itemsize
    state = batch * channels * state_size * call.get("state_dtype").itemsize
    small = a_log.nbytes + call.get("D").nbytes + call.get("dt_bias").nbytes
    inputs = tokens * (3 * channels + 2 * state_size) * act  # x, dt, z; B, C
    flops = tokens * channels * (MAMBA1_STATE_FLOPS * state_size + MAMBA1_CHANNEL_FLOPS)
    return Counts(flops={"vector": flops}, bytes_read=inputs + small + state, bytes_written=call.out_bytes + state,
                  state_bytes=state, launches=1)
