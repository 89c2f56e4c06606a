"""Per-rank model specs: what one GPU holds under tensor and expert parallelism.

Owns `rank_spec(spec, deployment) -> ModelSpec`: the spec of the model one rank runs, built
*before* capture (dynamo bakes head counts into `expand`, so a captured graph cannot be resharded):

- attention: query heads / tp; KV heads / tp, or 1 when tp > num_kv_heads (each KV head is then
  replicated on tp / num_kv_heads ranks, as vLLM does); MLA heads / tp (q_b_proj and kv_b_proj
  column-parallel, the latent projections replicated); linear-attention heads / tp; DeepSeek-V4's
  compressed attention: query heads and output groups / tp (q_b_proj column-parallel, each rank's
  grouped o_a over its own groups, o_b row-parallel), the shared K = V head, its compressors and the
  indexer replicated; Mamba-2 heads / tp and B / C groups / tp (one group is replicated, as vLLM's
  `MambaMixer2` does);
- column-parallel q/k/v, gate/up and row-parallel o_proj/down_proj follow from those sizes: the
  per-rank model's projections have exactly the sharded shapes;
- dense MLP intermediate / tp; MoE: each expert's intermediate / moe_tp (tp without EP, 1 with
  it), shared experts' intermediate / tp. Every rank keeps all E experts in its graph, EP or not:
  the router and top-k need them (E/ep experts would shrink the router and fail for k > E/ep);
  `passes/insert_ep_collectives.py` costs and stores the rank's E/ep share;
- vocab-parallel embedding and lm_head: vLLM pads the vocabulary to a multiple of 64 and gives
  each rank ceil(padded / tp) rows.

The all-reduces that make a row-parallel output whole again are inserted after capture
(`passes/insert_tp_collectives.py`). Plain data in, plain data out: no torch.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..models.spec import GQA_KINDS, AttentionSpec, LayerSpec, MLPSpec, ModelSpec
from .config import TraceDeployment

VOCAB_PADDING = 64  # vLLM `DEFAULT_VOCAB_PADDING_SIZE`
SPECIAL_TOKENS = ("pad_token_id", "bos_token_id", "eos_token_id")


def rank_vocab(vocab_size: int, tp: int) -> int:
    padded = -(-vocab_size // VOCAB_PADDING) * VOCAB_PADDING if tp > 1 else vocab_size
    return -(-padded // tp)


def _attention(a: AttentionSpec, tp: int) -> AttentionSpec:
    if tp == 1 or a.kind == "none":
        return a
    if a.kind in GQA_KINDS:
        kv = a.num_kv_heads // tp if a.num_kv_heads >= tp else 1
        return dataclasses.replace(a, num_heads=a.num_heads // tp, num_kv_heads=kv)
    if a.kind == "mla":
        kv = a.num_kv_heads // tp if a.num_kv_heads >= tp else a.num_kv_heads
        return dataclasses.replace(a, num_heads=a.num_heads // tp, num_kv_heads=kv)
    if a.kind == "compressed" and a.compressed is not None:
        compressed = dataclasses.replace(a.compressed, o_groups=a.compressed.o_groups // tp)
        return dataclasses.replace(a, num_heads=a.num_heads // tp, compressed=compressed)
    if a.kind == "mamba" and a.mamba is not None:  # heads split; B / C groups split, or one replicated
        groups = a.mamba.n_groups // tp if a.mamba.n_groups > 1 else 1
        return dataclasses.replace(a, mamba=dataclasses.replace(a.mamba, num_heads=a.mamba.num_heads // tp,
                                                                n_groups=groups))
    if a.kind == "linear" and a.linear is not None:
        linear = dataclasses.replace(a.linear, num_key_heads=a.linear.num_key_heads // tp,
                                     num_value_heads=a.linear.num_value_heads // tp)
        return dataclasses.replace(a, num_heads=a.num_heads // tp if a.num_heads else 0,
                                   num_kv_heads=a.num_kv_heads // tp if a.num_kv_heads else 0, linear=linear)
    return a


def _mlp(m: MLPSpec, d: TraceDeployment) -> MLPSpec:
    if m.kind == "dense" and d.tp > 1:
        return dataclasses.replace(m, intermediate_size=m.intermediate_size // d.tp)
    if m.kind == "moe" and m.moe is not None:
        moe = dataclasses.replace(
            m.moe, expert_intermediate_size=m.moe.expert_intermediate_size // d.moe_tp,
            shared_intermediate_size=m.moe.shared_intermediate_size // d.tp)
        return dataclasses.replace(m, moe=moe)
    return m


def shard_layer(layer: LayerSpec, d: TraceDeployment) -> LayerSpec:
    return LayerSpec(attention=_attention(layer.attention, d.tp), mlp=_mlp(layer.mlp, d))


def rank_spec(spec: ModelSpec, d: TraceDeployment) -> ModelSpec:
    """The spec one rank runs (the input spec itself when nothing is sharded)."""
    if not d.sharded:
        return spec
    vocab = rank_vocab(spec.vocab_size, d.tp)
    config: dict[str, Any] = dict(spec.hf_config)
    config["vocab_size"] = vocab
    for key in SPECIAL_TOKENS:  # token ids past this rank's rows live on another rank: row 0 stands in for
        ids = config.get(key)  # them (an id sizes nothing; configs with strict fields refuse None, Cwm's)
        if isinstance(ids, int) and ids >= vocab:
            config[key] = 0
        elif isinstance(ids, list):
            config[key] = [i if i < vocab else 0 for i in ids]
    return dataclasses.replace(spec, vocab_size=vocab, layers=tuple(shard_layer(layer, d) for layer in spec.layers),
                               hf_config=config, mtp_block=tuple(shard_layer(layer, d) for layer in spec.mtp_block))
