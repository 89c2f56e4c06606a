"""The adapter for Bamba (`bamba`: IBM's Bamba-9B), the Mamba-2 / attention hybrid Granite 4.0's is built on.

Each decoder layer is a token mixer — full GQA attention (RoPE on half of each head) on the layers that
`attn_layer_indices` lists, a Mamba-2 mixer of `mamba_n_heads` x `mamba_d_head` channels on the others (state
`mamba_d_state`, B / C in `mamba_n_groups` groups, a `mamba_d_conv` causal conv, chunks of `mamba_chunk_size`,
the state cached in the model dtype as vLLM's `mamba_ssm_cache_dtype` "auto" does) — then a gated MLP of
`intermediate_size` (`feed_forward`). The config's layer types are derived from `attn_layer_indices`
(transformers' read-only `layers_block_type`), so a stack is written back through that list. The Mamba fields
and a TP rank's mixer width are Granite 4.0's (`granite_hybrid.py`).

Maps a stack of layer specs back to `attn_layer_indices`. Must not know about capture or costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PretrainedConfig

from ...errors import UnsupportedModelError
from ..spec import LayerSpec, MLPSpec, ModelSpec
from .base import CORE_FIELDS, DecoderAdapter
from .granite_hybrid import GraniteHybridAdapter, write_mixer
from .mamba_fields import GRANITE_HYBRID_MAMBA


@dataclass(frozen=True)
class BambaAdapter(GraniteHybridAdapter):
    """Mamba-2 or GQA mixers, each followed by a dense gated MLP."""

    mlp_bias_field: str | None = "mlp_bias"

    def required_fields(self) -> tuple[str, ...]:
        return (*CORE_FIELDS, "intermediate_size", *GRANITE_HYBRID_MAMBA.sizes)

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        return DecoderAdapter.mlp_spec(self, config, index)

    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.attn_layer_indices = [i for i, layer in enumerate(layers) if layer.attention.kind != "mamba"]
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        att, mlp = layer.attention, layer.mlp
        if att.kind not in ("mamba", "full") or mlp.kind != "dense":
            raise UnsupportedModelError(f"model_type {spec.model_type!r}: a layer is a Mamba-2 or full-attention "
                                        f"mixer and a dense MLP; this one asks for {att.kind!r} with {mlp.kind!r}")
        config = DecoderAdapter.config_for_layer(self, spec, layer, base)
        if att.kind == "mamba" and att.mamba is not None:
            write_mixer(config, att.mamba, int(spec.hidden_size))
        return config
