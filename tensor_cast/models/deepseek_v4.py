"""The swapped forwards of DeepSeek-V4 (`deepseek_v4`): its attention, hyper-connections and hash router.

- **Attention** (`DeepseekV4Attention`): keeps the module's projections and norms (q_a / q_b with
  their norms, the shared K=V `kv_proj` with `kv_norm`, the grouped output projection o_a / o_b),
  its interleaved partial RoPE helper (q, kv, the compressed entries, the inverse rotation of the
  output) and the compressor's / indexer's own projections; the grouped output projection o_a (a
  batched GEMM, transformers' `bmm`) becomes `tensor_cast::grouped_linear`, which `quantize_linears`
  can store in the checkpoint's FP8; the compression becomes
  `tensor_cast::kv_compress`, the lightning indexer `tensor_cast::compressed_indexer`, and the
  attention over the sliding window and the compressed entries `tensor_cast::compressed_attention`
  (transformers' forward concatenates a no-cache compressed KV and an eager masked softmax).
- **Hyper-connections** (`DeepseekV4HyperConnection`, and the decoder layer that applies them): the
  Sinkhorn-normalized stream mixing becomes `tensor_cast::hc_pre` and the write-back
  `tensor_cast::hc_post` — one kernel each, as engines run them, instead of ~90 eager ops.
- **Hash routing** (`DeepseekV4HashRouter`, the first `num_hash_layers` MoE layers): experts picked
  by a frozen token-id table. The swap picks them by top-k of the same scores: the same router
  GEMM, scoring and expert work (a top-k over E scores per token in place of a table lookup), so
  `replace_moe` folds the block as every other MoE block.

The cached context length comes from the carrier tensor the capture threads through the forward
kwargs, as for every other attention. Applied by `module_swaps.py`.
"""

from __future__ import annotations

from typing import Any

import torch

from ..ops.compressed_attention import compressed_attention, compressed_indexer, kv_compress
from ..ops.hyper_connection import hc_post, hc_pre
from ..ops.quant import grouped_linear
from .dsa_attention import context_length, family_function


def norm_eps(norm: Any) -> float:
    """An unweighted RMSNorm's epsilon: `variance_epsilon` (transformers 5.25's `DeepseekV4UnweightedRMSNorm`,
    as most norms name it) or `eps` (5.23-5.24's); a norm with neither is an AttributeError naming both."""
    for name in ("variance_epsilon", "eps"):
        if hasattr(norm, name):
            return float(getattr(norm, name))
    raise AttributeError(f"{type(norm).__name__} has neither variance_epsilon nor eps: its RMSNorm epsilon is unknown")


def _rope(module: Any) -> Any:
    """V4's interleaved trailing-slice RoPE helper, from the module's own modeling file."""
    return family_function(module, "apply_rotary_pos_emb")


def _compressed_entries(compressor: Any, hidden: torch.Tensor, context: Any, overlap: bool) -> torch.Tensor:
    """A compressor's entries for the step's closed windows, RoPE-rotated at their window starts."""
    ratio = compressor.compress_rate
    entries = kv_compress(compressor.kv_proj(hidden), compressor.gate_proj(hidden), compressor.position_bias,
                          compressor.kv_norm.weight, compressor.kv_norm.variance_epsilon, ratio, overlap, context)
    positions = (torch.arange(entries.shape[1], device=hidden.device) * ratio).unsqueeze(0).expand(hidden.shape[0], -1)
    cos, sin = compressor.rotary_emb(entries, position_ids=positions, layer_type=compressor.rope_layer_type)
    return _rope(compressor)(entries.unsqueeze(1), cos, sin).squeeze(1)


def _indexer_picks(indexer: Any, hidden: torch.Tensor, q_residual: torch.Tensor, position_ids: Any,
                   context: Any) -> torch.Tensor:
    batch, seq, _ = hidden.shape
    keys = _compressed_entries(indexer, hidden, context, overlap=True)
    cos, sin = indexer.rotary_emb(hidden, position_ids=position_ids, layer_type=indexer.rope_layer_type)
    q = indexer.q_b_proj(q_residual).view(batch, seq, -1, indexer.head_dim).transpose(1, 2)
    q = _rope(indexer)(q, cos, sin).transpose(1, 2)
    scorer = indexer.scorer
    # both scalings folded into the per-head weights (transformers applies them to the scores; ReLU commutes)
    weights = scorer.weights_proj(hidden) * (scorer.weights_scaling * scorer.softmax_scale)
    return compressed_indexer(q, keys, weights, context, indexer.index_topk, indexer.compress_rate)


class CompressedAttentionForward:
    """Mixin: DeepSeek-V4 attention as compressor / indexer / attention ops."""

    tensor_cast_decode_query_len: int = 1

    def forward(self, hidden_states: torch.Tensor, position_embeddings: Any, position_ids: Any,
                attention_mask: Any = None, cache: Any = None, **kwargs: Any) -> tuple[Any, None]:
        module: Any = self
        batch, seq = hidden_states.shape[:-1]
        rope = _rope(module)
        cos, sin = position_embeddings[module.rope_layer_type]
        q_residual = module.q_a_norm(module.q_a_proj(hidden_states))
        q = module.q_b_proj(q_residual).view(batch, seq, -1, module.head_dim).transpose(1, 2)
        q = rope(module.q_b_norm(q), cos, sin)
        kv = module.kv_norm(module.kv_proj(hidden_states)).view(batch, seq, 1, module.head_dim).transpose(1, 2)
        kv = rope(kv, cos, sin)
        context = context_length(module, kwargs)
        compressor, compressed, indices, ratio = module.compressor, None, None, 0
        if compressor is not None:
            ratio = compressor.compress_rate
            sparse = hasattr(compressor, "indexer")  # CSA: overlapping windows and an indexer; HCA: neither
            compressed = _compressed_entries(compressor, hidden_states, context, sparse).unsqueeze(1)
            if sparse:
                indices = _indexer_picks(compressor.indexer, hidden_states, q_residual, position_ids, context)
        out = compressed_attention(q, kv, compressed, indices, module.sinks, context, module.sliding_window, ratio,
                                   module.scaling, module.tensor_cast_decode_query_len)
        # K = V carried RoPE on its trailing slice: the conjugate rotation at the query position undoes it
        out = rope(out.transpose(1, 2), cos, -sin).transpose(1, 2)
        grouped = grouped_linear(out.reshape(batch, seq, module.config.o_groups, -1), module.o_a_proj.weight, "none")
        return module.o_b_proj(grouped.flatten(2)), None


class HyperConnectionForward:
    """Mixin: the mHC mixing weights and the collapsed block input as one `hc_pre` op."""

    def forward(self, hidden_streams: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        module: Any = self
        post, comb, collapsed = hc_pre(hidden_streams, module.fn, module.base, module.scale, norm_eps(module.input_norm),
                                       module.hc_eps, module.hc_sinkhorn_iters)
        return post, comb, collapsed


class HyperDecoderLayerForward:
    """Mixin: a DeepSeek-V4 decoder layer with each block's write-back to the streams as one `hc_post` op."""

    def forward(self, hidden_states: torch.Tensor, input_ids: Any = None, **kwargs: Any) -> torch.Tensor:
        module: Any = self
        post, comb, collapsed = module.attn_hc(hidden_states)
        attn_output, _ = module.self_attn(module.input_layernorm(collapsed), **kwargs)
        hidden_states = hc_post(attn_output, post, comb, hidden_states)
        post, comb, collapsed = module.ffn_hc(hidden_states)
        mlp_output = module.mlp(module.post_attention_layernorm(collapsed), input_ids=input_ids)
        return hc_post(mlp_output, post, comb, hidden_states)


class HashRouterAsTopK:
    """Mixin: hash routing costed as top-k routing over the same scores (see the module docstring)."""

    def forward(self, hidden_states: torch.Tensor, input_ids: Any = None) -> tuple[torch.Tensor, ...]:
        module: Any = self
        flat = hidden_states.reshape(-1, module.hidden_dim)
        logits = torch.nn.functional.linear(flat, module.weight)
        scores = module.score_fn(logits)
        indices = torch.topk(scores, module.top_k, dim=-1, sorted=False).indices
        weights = scores.gather(1, indices)
        weights = weights / (weights.sum(dim=-1, keepdim=True) + 1e-20)
        return logits, weights * module.routed_scaling_factor, indices
