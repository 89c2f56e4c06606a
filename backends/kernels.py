"""Kernel shapes: what an efficiency model needs to know about an op beyond its counts.

A cost rule that runs a kernel whose achieved fraction of peak depends on its shape returns that
shape with its counts (`Counts.kernel`), so the backend computes time from (counts, kernel shape,
device profile) alone and never re-reads the op's arguments:

- `GemmShape(batch, m, n, k)`: a (batched) GEMM — tile counts, wave quantization, split-K;
- `AttentionShape(q_len, keys, head_dim, v_dim, window, batch, kv_heads, kv_itemsize, q_heads)`: a
  FlashAttention-style kernel over (B, H, S, D) queries — its tiles (`backends/attention_tiles.py`),
  the longest CTA attending `keys` keys (or the window).

- `DeltaNetShape(sequences, q_len, v_heads, chunk, chunk_flops, fused_bytes, recurrent)`: a gated
  DeltaNet layer (conv1d + delta rule) — the (sequence, value head) work items its scan runs one
  CTA each, the chunks a CTA walks one after another, and the bytes a fused chunked scan moves.
- `MoEShape(routed, bins, pairs, experts, row_flops, variant, spread)`: the routed experts' grouped
  GEMMs of a MoE block on one device — the tokens routed, the rank's experts in bins of equal
  per-token inclusion probability, the (token, expert) rows, the GEMM FLOPs of one row, the kernel
  variant (the experts' quant scheme) and whether the rows per expert are random (routing) or
  exact; `backends/moe_tiles.py` pads each hit expert's rows to the kernel's M tile.
- `QuantShape(rows, amax_atomics, row_walk)`: an activation quantization — the per-row work of
  a dynamic per-tensor scale (one reduction block per row, each ending in an atomic max on the
  one scale) and the elements of the row that block walks (K).
- `MLAShape(tokens, heads, kv_itemsize, absorbed, sparse, short_step)`: multi-head latent attention
  — the new tokens and local heads an engine's per-token glue scales with, which form (absorbed
  decode kernel or expanded prefill) the step runs, whether it attends the indexer's top-k
  (DeepSeek sparse attention: FlashMLA's sparse kernels, absorbed at every step length) and
  whether the step is decode-sized (sparse MLA runs a decode and a prefill kernel).
- `IndexerShape(tokens, key_bytes, cached_tokens)`: the DeepSeek sparse-attention indexer — the new
  tokens (each scores its keys, then a top-k), and the key-cache bytes counted at the traced cache
  dtype beside the cached tokens, so an engine whose indexer cache has its own layout (vLLM: fp8
  keys with a per-token scale) reads its own bytes.

Kernels without a shape model (norms, elementwise) leave
`kernel` None and get their kind's base efficiency; a GEMM-kind op without a `GemmShape` is an
error in `backends/efficiency.py`. Values may be sympy expressions in B, S, C.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..sizes import numel

if TYPE_CHECKING:  # the op registry imports torch; efficiency models import this module without it
    from .formulas.registry import TensorInfo


@dataclass(frozen=True)
class GemmShape:
    batch: Any
    m: Any
    n: Any
    k: Any
    variant: str = ""  # the kernel variant an engine section may calibrate (a quant scheme); "": the precision


@dataclass(frozen=True)
class AttentionShape:
    q_len: Any  # queries per sequence
    keys: Any  # keys the last query block attends (context + queries)
    head_dim: Any
    v_dim: Any
    window: int = 0  # sliding window (0: full)
    batch: Any = 1  # sequences
    kv_heads: Any = 1  # KV heads (one work item per sequence, KV head and q-block: the CTA floor)
    kv_itemsize: Any = 2  # bytes per KV element (1: an 8-bit KV cache, its own kernel path)
    q_heads: Any = 1  # query heads (GQA: q_heads / kv_heads share a KV head; PackGQA packs them into one q-block)


@dataclass(frozen=True)
class MLAShape:
    tokens: Any  # new tokens of the step, B·S
    heads: Any  # query heads on this GPU
    kv_itemsize: Any = 2  # bytes per cached latent element (1: an 8-bit cache, its own kernel path)
    absorbed: Any = True  # the form: True (absorbed, decode kernel), False (expanded prefill), or a sympy condition
    sparse: bool = False  # attends the DSA indexer's top-k (sparse MLA kernel)
    short_step: Any = True  # at most decode_query_len tokens per sequence (the decode kernel), or a sympy condition


@dataclass(frozen=True)
class IndexerShape:
    tokens: Any  # new tokens of the step, B·S (each scores its keys, then selects its top-k)
    key_bytes: Any  # bytes of cached indexer keys the counts read, at the traced cache dtype
    cached_tokens: Any  # tokens whose indexer keys are read, B·(C + S)


@dataclass(frozen=True)
class DeltaNetShape:
    sequences: Any  # B
    q_len: Any  # new tokens per sequence, S
    v_heads: Any  # value heads on this GPU (one scan work item per sequence and value head)
    chunk: int  # tokens per chunk of the chunked scan
    chunk_flops: Any  # tensor-core FLOPs of one chunk of one value head (the chunked form)
    fused_bytes: Any  # bytes a fused chunked scan plus the conv move (no per-chunk states or W/U round trips)
    recurrent: Any = True  # the form: True (recurrent decode kernel), False (chunked), or a sympy condition


@dataclass(frozen=True)
class MoEShape:
    routed: Any  # N: tokens routed over the experts (this rank's T, or the EP group's N = ep_dp·T)
    # the experts on this GPU in bins: (experts in the bin, per-token inclusion probability q, or
    # exact rows per expert when `spread` = 0); an expert of the bin gets N·q rows on average
    bins: tuple[tuple[int, float], ...]
    pairs: Any  # (token, expert) rows through the grouped GEMMs on this GPU
    experts: int  # experts on this GPU (E / ep)
    row_flops: Any  # tensor-core FLOPs of one row through both grouped GEMMs (2·H·n1 + 2·I·H)
    hidden: int = 1  # H: the K of the gate+up GEMM
    intermediate: int = 1  # I (per GPU): the K of the down GEMM
    expert_bytes: Any = 0  # stored bytes of one expert's weights (both GEMMs, scales included)
    variant: str = "bf16"  # the experts' scheme (fp8, fp8_block, mxfp4, w4a16, nvfp4, ...) or "bf16"
    spread: int = 1  # 1: rows per expert vary with the routing (binomial); 0: exactly the bin's rows
    top_k: int = 1  # experts per token
    ep: int = 1  # ranks the routed experts are split over (this GPU holds E / ep of them)
    act_bytes: Any = 2  # bytes of one activation element the block takes and returns (bf16: 2)
    # expert-weight bytes a kernel benchmark touches between two runs of this call when it replays
    # the same layer back to back (its hit experts' weights; over several routings, their union):
    # what L2 may still hold (`moe_tiles.l2_resident_share`). 0 in a served step, where every other
    # layer's weights pass through L2 between two calls of one layer.
    replay_bytes: Any = 0


@dataclass(frozen=True)
class QuantShape:
    rows: Any  # rows (tokens) quantized
    amax_atomics: Any = 0  # atomic max updates of one shared scale (dynamic per-tensor: one per row)
    row_walk: Any = 0  # elements of a row one block walks (dynamic per-tensor: K, the row length); 0: no row walk


def product_shape(a: TensorInfo, b: TensorInfo, out: TensorInfo) -> GemmShape:
    """(..., M, K) @ (..., K, N) as one GEMM over all leading rows, or a batch of GEMMs."""
    k = a.shape[-1]
    if b.ndim <= 2 or out.ndim <= 2:  # (..., M, K) @ (K, N): one GEMM over all leading rows
        return GemmShape(1, numel(out.shape[:-1]), out.shape[-1] if b.ndim == 2 else 1, k)
    return GemmShape(numel(out.shape[:-2]), out.shape[-2], out.shape[-1], k)
