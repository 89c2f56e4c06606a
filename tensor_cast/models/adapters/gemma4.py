"""The adapter for Gemma 4's text decoder (`gemma4_text`; `gemma4` wraps it with vision and audio towers).

Gemma 4 interleaves sliding-window layers (`sliding_window`, `num_key_value_heads` KV heads of
`head_dim`) with global layers whose attention is shaped apart: `global_head_dim` wide heads,
`num_global_key_value_heads` KV heads when `attention_k_eq_v` (the value is the key projection's
output, RMS-normalized without a scale: no `v_proj`, but keys and values are both cached), and
partial RoPE — transformers carries those per layer in its `per_layer_config`. Per-head q/k/v
norms, sandwich norms around attention and MLP (GELU-tanh gated), a learned per-layer scalar,
tied embeddings scaled by sqrt(hidden), final logit soft-capping (free here: one elementwise op).

Supported: the dense models (Gemma-4-31B's layout) and the MoE ones (`enable_moe_block`, Gemma-4-26B-A4B's
layout: `num_experts` routed experts of `moe_intermediate_size`, `top_k_experts` per token, beside the
dense MLP in every layer — in the spec a MoE with one shared expert of `intermediate_size`, which it
costs like; `models/gemma4_moe.py` emits the branch as one MoE op). Refused in one line, not yet
modelled: per-layer input embeddings (`hidden_size_per_layer_input`: the E2B / E4B models) and KV-shared
layers (`num_kv_shared_layers`: later layers attend over an earlier layer's cache).

Maps a stack of layer specs back to `layer_types` and the stack's own `per_layer_config` (keyed by
the stack's indices). Must not know about capture or costs.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec, MoESpec
from .base import DecoderAdapter, require

MOE_FIELDS = ("num_experts", "top_k_experts", "moe_intermediate_size")

# written fields of the variants not modelled yet -> (the value that means "absent", what it is)
NOT_MODELLED = {
    "hidden_size_per_layer_input": (0, "per-layer input embeddings (Gemma-4 E2B / E4B)"),
    "num_kv_shared_layers": (0, "KV-shared layers (Gemma-4 E2B / E4B)"),
}


@dataclass(frozen=True)
class Gemma4Adapter(DecoderAdapter):
    """Sliding and global layers with their own head width and KV heads; dense GELU-tanh MLPs."""

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        super().check_given(data, source)
        for name, (absent, what) in NOT_MODELLED.items():
            value = data.get(name)
            if value not in (None, absent):
                raise UnsupportedModelError(f"{source}: {name}={value!r}: {what} is not modelled yet; supported: "
                                            f"{name}={absent!r}")
        if data.get("enable_moe_block"):
            missing = [name for name in MOE_FIELDS if data.get(name) is None]
            if missing:
                raise MalformedConfigError(f"{source}: enable_moe_block needs {', '.join(missing)} "
                                           f"(required with it: {', '.join(MOE_FIELDS)})")

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        spec = super().mlp_spec(config, index)
        if not getattr(config, "enable_moe_block", False):
            return spec
        moe = MoESpec(num_experts=int(require(config, "num_experts")), top_k=int(require(config, "top_k_experts")),
                      expert_intermediate_size=int(require(config, "moe_intermediate_size")), num_shared_experts=1,
                      shared_intermediate_size=spec.intermediate_size)
        return MLPSpec(kind="moe", activation=spec.activation, moe=moe)

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        layer = config.per_layer_config[index]  # transformers' per-layer view: the global layers' own head shape
        kind = "sliding" if self.hf_layer_types(config)[index] == "sliding_attention" else "full"
        return AttentionSpec(kind=kind, num_heads=int(require(config, "num_attention_heads")),
                             num_kv_heads=int(layer.num_key_value_heads), head_dim=int(layer.head_dim),
                             window=int(require(config, "sliding_window")) if kind == "sliding" else None,
                             qk_norm=True)

    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        first = layers[0].attention
        per_layer = {i: {"head_dim": layer.attention.head_dim, "num_key_value_heads": layer.attention.num_kv_heads}
                     for i, layer in enumerate(layers)}  # keyed by this stack's indices
        config = self.base_config(spec, num_hidden_layers=len(layers), layer_types=[self._hf_type(x) for x in layers],
                                  head_dim=first.head_dim, num_key_value_heads=first.num_kv_heads,
                                  num_attention_heads=first.num_heads, per_layer_config=per_layer)
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = copy.deepcopy(base)
        if layer.mlp.kind == "dense":
            config.intermediate_size = layer.mlp.intermediate_size
        elif layer.mlp.kind == "moe" and layer.mlp.moe is not None:
            moe = layer.mlp.moe
            config.intermediate_size = moe.shared_intermediate_size  # the dense MLP beside the experts
            config.num_experts, config.top_k_experts = moe.num_experts, moe.top_k
            config.moe_intermediate_size = moe.expert_intermediate_size
        return config

    @property
    def routed_experts_path(self) -> str:
        return "experts"  # on the decoder layer itself
