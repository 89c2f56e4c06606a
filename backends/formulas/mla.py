"""Cost rules for DeepSeek multi-head latent attention (`tensor_cast::mla_attention`) and the
DeepSeek sparse-attention indexer (`tensor_cast::dsa_indexer`).

Dimensions (named as in the DeepSeek configs): H heads, r = kv_lora_rank (latent per token),
dr = qk_rope_head_dim (rope key per token, shared by the heads), dn = qk_nope_head_dim,
dv = v_head_dim; B sequences, S new tokens each, C cached tokens each. A causal query i attends
C + i + 1 keys, capped at top-k under sparse attention; "pairs" below is the sum over
(sequence, head, query) of attended keys.

Two ways to compute the same attention, as serving engines (vLLM, SGLang) do:

- **absorbed** (decode; FlashMLA): W_UK folded into the query, W_UV into the output, attention
  is multi-query over the latent. FLOPs: 2·B·S·H·dn·r (q·W_UK) + 2·pairs·(r + dr) (scores)
  + 2·pairs·r (probs·latent) + 2·B·S·H·r·dv (·W_UV). The latent cache is read once per sequence
  (one shared "KV head"); the latent query and latent output round-trip through memory between
  the three kernels.
- **expanded** (prefill): every attended token's latent up-projected to per-head no-rope keys and
  values (2·B·T·r·H·(dn + dv) for T tokens), keys assembled with the shared rope key, then
  multi-head attention: 2·pairs·(dn + dr) + 2·pairs·dv.

Per (query, key, head) pair the attention core costs 2·(2r + dr) FLOPs absorbed vs
2·(dn + dr + dv) expanded: 2176 vs 640 for DeepSeek-V3, 3.4x; the expanded form pays instead for
up-projecting the whole context, which is why engines absorb for decode and expand for prefill.
The form is the cost knob `CostKnobs.mla_form` (not an op argument: it changes the cost, not the
graph); `"auto"` picks by the step's query length (a sympy Piecewise in S when symbolic), except
under sparse attention (top-k indices given), which engines run absorbed at every step length:
FlashMLA's sparse kernels (vLLM's FLASHMLA_SPARSE, SGLang's NSA backend) take the latent query
for prefill as for decode, the top-k cap making the absorbed form's per-pair cost the smaller
total.

The `kv_b_proj` weight is read at the dtype the op receives (bf16 even in FP8 checkpoints: vLLM
dequantizes W_UK / W_UV for its absorbed kernels).

Both forms add the cache append (the S new tokens' latent + rope key written, vLLM
`concat_and_cache_mla`), ~4 vector FLOPs per score for the online softmax, and hold a KV cache of
B·(C + S)·(r + dr) elements — the latent, not expanded K/V.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ...errors import InvalidArgumentError, choices
from ...ops.mla import MLA_FORMS
from ...sizes import smin
from ..counts import Counts
from ..kernels import IndexerShape, MLAShape
from .attention import SOFTMAX_FLOPS_PER_SCORE, attended_keys
from .kernel_forms import is_short_step, pick_form
from .matmul import gemm_precision
from .registry import OpCall, register

INDEX_SCORE_BYTES = 4  # the indexer's logits are fp32 (DeepGEMM fp8_mqa_logits output)


@dataclass(frozen=True)
class MLADims:
    batch: Any
    heads: Any
    q_len: Any
    context: Any
    rank: int
    rope: int
    nope: int
    v_dim: int
    topk: int = 0  # > 0: sparse attention over at most topk keys per query

    @property
    def pairs(self) -> Any:
        return self.batch * self.heads * attended_keys(self.q_len, self.context, causal=True, window=self.topk)

    @property
    def touched(self) -> Any:
        """Cached tokens per sequence the step reads: all of them, or the union of the top-k picks."""
        total = self.context + self.q_len
        return smin(total, self.topk * self.q_len) if self.topk else total


@dataclass(frozen=True)
class MLABytes:
    act: Any  # bytes per activation element (queries, latent query/output, expanded K/V)
    cache: Any  # bytes per cached latent / rope element
    weight_bytes: Any  # the whole kv_b_proj weight
    q_bytes: Any  # q_nope + q_rope as passed in
    out_bytes: Any
    index_bytes: Any = 0  # the top-k indices read by sparse attention


def absorbed_counts(d: MLADims, b: MLABytes, precision: str) -> Counts:
    tokens = d.batch * d.q_len
    q_lat = tokens * d.heads * d.rank * b.act  # q_nope·W_UK, written then read by the attention kernel
    o_lat = tokens * d.heads * d.rank * b.act  # attention output in latent space, written then read by ·W_UV
    cache_read = d.batch * d.touched * (d.rank + d.rope) * b.cache
    append = tokens * (d.rank + d.rope) * b.cache
    flops = (2 * tokens * d.heads * d.nope * d.rank + 2 * d.pairs * (d.rank + d.rope) + 2 * d.pairs * d.rank
             + 2 * tokens * d.heads * d.rank * d.v_dim)
    return Counts(
        flops={precision: flops, "vector": SOFTMAX_FLOPS_PER_SCORE * d.pairs},
        bytes_read=b.q_bytes + b.weight_bytes + q_lat + cache_read + b.index_bytes + o_lat + append,
        bytes_written=q_lat + o_lat + b.out_bytes + append,
        launches=4,  # q·W_UK, attention, ·W_UV, cache append
    )


def expanded_counts(d: MLADims, b: MLABytes, precision: str) -> Counts:
    tokens = d.batch * d.q_len
    kv_tokens = d.batch * d.touched
    cache_read = kv_tokens * (d.rank + d.rope) * b.cache
    up = kv_tokens * d.heads * (d.nope + d.v_dim) * b.act  # per-head no-rope keys and values
    keys = kv_tokens * d.heads * (d.nope + d.rope) * b.act  # keys assembled with the shared rope key
    values = kv_tokens * d.heads * d.v_dim * b.act
    append = tokens * (d.rank + d.rope) * b.cache
    flops = (2 * kv_tokens * d.rank * d.heads * (d.nope + d.v_dim) + 2 * d.pairs * (d.nope + d.rope)
             + 2 * d.pairs * d.v_dim)
    assemble_read = kv_tokens * d.heads * d.nope * b.act + kv_tokens * d.rope * b.cache
    return Counts(
        flops={precision: flops, "vector": SOFTMAX_FLOPS_PER_SCORE * d.pairs},
        bytes_read=cache_read + b.weight_bytes + assemble_read + b.q_bytes + keys + values + b.index_bytes + append,
        bytes_written=up + keys + b.out_bytes + append,
        launches=4,  # up-projection GEMM, key assembly, attention, cache append
    )


@register(torch.ops.tensor_cast.mla_attention.default, kind="attention")
def mla_attention(call: OpCall) -> Counts:
    q_nope, q_rope, latent, k_rope, weight = (call.get(name) for name in (
        "q_nope", "q_rope", "latent", "k_rope", "kv_b_weight"))
    context, indices = call.get("context_len"), call.get("indices")
    form, decode_query_len = str(call.knobs.mla_form), call.get("decode_query_len")  # the form: a cost knob
    short = is_short_step(q_nope.shape[2], decode_query_len)
    if form not in MLA_FORMS:
        raise InvalidArgumentError(f"mla_form {form!r} is not one of {choices(MLA_FORMS)}")
    batch, heads, q_len, nope = q_nope.shape
    dims = MLADims(batch=batch, heads=heads, q_len=q_len, context=context, rank=latent.shape[-1],
                   rope=k_rope.shape[-1], nope=nope, v_dim=weight.shape[0] // heads - nope,
                   topk=indices.shape[-1] if indices is not None else 0)
    sizes = MLABytes(act=q_nope.itemsize, cache=latent.itemsize, weight_bytes=weight.nbytes,
                     q_bytes=q_nope.nbytes + q_rope.nbytes, out_bytes=call.out_bytes,
                     index_bytes=indices.nbytes if indices is not None else 0)
    precision = gemm_precision(q_nope, latent)
    if form == "absorbed":
        absorbed: Any = True
        counts = absorbed_counts(dims, sizes, precision)
    elif form == "expanded":
        absorbed = False
        counts = expanded_counts(dims, sizes, precision)
    elif indices is not None:  # engines: sparse MLA runs absorbed at every step length
        absorbed = True
        counts = absorbed_counts(dims, sizes, precision)
    else:  # engines: the absorbed (FlashMLA) kernel for decode-sized steps, expanded attention for prefill
        absorbed = short
        counts = pick_form(absorbed, absorbed_counts(dims, sizes, precision), expanded_counts(dims, sizes, precision))
    held = dims.batch * (dims.context + dims.q_len) * (dims.rank + dims.rope) * latent.itemsize
    return Counts(flops=counts.flops, bytes_read=counts.bytes_read, bytes_written=counts.bytes_written,
                  state_bytes=held, launches=counts.launches,
                  kernel=MLAShape(tokens=batch * q_len, heads=heads, kv_itemsize=latent.itemsize, absorbed=absorbed,
                                  sparse=indices is not None, short_step=short))


@register(torch.ops.tensor_cast.dsa_indexer.default, kind="attention")
def dsa_indexer(call: OpCall) -> Counts:
    """Lightning indexer: one score per (query, cached or new key), then a top-k selection.

    FLOPs: 2·Hi·Di per (query, key) pair for q·k over the Hi indexer heads, plus ReLU, the
    per-head weight and the sum over heads (3·Hi vector FLOPs) and one compare for the top-k.
    Bytes: q, the head weights, the indexer key cache (Di per token) read once, the fp32 logits
    written and read back by the top-k kernel, the indices written, the new keys appended.
    State: the indexer key cache, B·(C + S)·Di elements.
    """
    q, k, weights = call.get("q"), call.get("k"), call.get("weights")
    context = call.get("context_len")
    batch, q_len, heads, dim = q.shape
    pairs = batch * attended_keys(q_len, context, causal=True, window=0)
    cached = batch * (context + q_len) * dim * k.itemsize
    append = k.nbytes
    logits = pairs * INDEX_SCORE_BYTES
    return Counts(
        flops={gemm_precision(q, k): 2 * heads * dim * pairs, "vector": (3 * heads + 1) * pairs},
        bytes_read=q.nbytes + weights.nbytes + cached + append + logits,
        bytes_written=append + logits + call.out_bytes,
        state_bytes=cached,
        launches=3,  # key-cache append, logits, top-k
        kernel=IndexerShape(tokens=batch * q_len, key_bytes=cached, cached_tokens=batch * (context + q_len)),
    )
