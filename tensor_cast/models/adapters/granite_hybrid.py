"""The adapter for Granite 4.0 hybrids (`granitemoehybrid`: Granite-4.0-H-Small / H-Tiny / H-Micro).

Each decoder layer is a token mixer named by `layer_types` (`mamba` -> `linear_attention`: a Mamba-2
mixer of `mamba_n_heads` x `mamba_d_head` channels, a state of `mamba_d_state` per channel, B / C in
`mamba_n_groups` groups, a `mamba_d_conv` causal conv, chunks of `mamba_chunk_size`; `attention` ->
`full_attention`: GQA, positions per `position_embedding_type`) followed by an MLP: when
`num_local_experts` > 0 a MoE block (`block_sparse_moe`: softmax over the top-`num_experts_per_tok`
logits, gated experts of `intermediate_size`) plus a shared gated MLP of `shared_intermediate_size`
beside it (`shared_mlp`, outside the block: one shared expert in the spec), else that shared MLP
alone (a dense MLP of `shared_intermediate_size`). The Mamba state is cached in the model dtype
(vLLM's `mamba_ssm_cache_dtype` default, "auto"; the configs do not say).

transformers sizes the Mamba mixer from `mamba_expand` x `hidden_size`: a TP rank's narrower mixer
is built with a `mamba_expand` whose product is exactly its width (`mamba_fields.set_mixer_width`).

Maps a stack of layer specs back to `layer_types`. Must not know about capture or costs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PretrainedConfig

from ...errors import UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MambaSpec, MLPSpec, ModelSpec
from .base import CORE_FIELDS, DecoderAdapter, require
from .mamba_fields import GRANITE_HYBRID_MAMBA, set_mixer_width
from .moe import MoEFamily

GRANITE_HYBRID_MOE = MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size",
                               shared_size="shared_intermediate_size", dense_size="shared_intermediate_size",
                               block="block_sparse_moe", router_module="router")


def write_mixer(config: PretrainedConfig, mamba: MambaSpec, hidden_size: int) -> None:
    """A layer's Mamba-2 sizes into `config`, the mixer's width (a TP rank's: heads / tp) included."""
    GRANITE_HYBRID_MAMBA.write(config, mamba)
    set_mixer_width(config, mamba.num_heads * mamba.head_dim, hidden_size)


@dataclass(frozen=True)
class GraniteHybridAdapter(DecoderAdapter):
    """Mamba-2 or GQA mixers, then MoE + a shared MLP (or the shared MLP alone)."""

    supports_layer_skips: bool = False  # the MLP sub-block is a MoE block and a shared MLP side by side
    mlp_bias_field: str | None = None

    def required_fields(self) -> tuple[str, ...]:
        return (*CORE_FIELDS, "layer_types", "shared_intermediate_size")

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        if self.hf_layer_types(config)[index] != "linear_attention":
            return super().attention_spec(config, index)
        return GRANITE_HYBRID_MAMBA.spec(config, self.dtype(config))

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        activation = str(getattr(config, self.activation_field, "silu"))
        if int(getattr(config, "num_local_experts", 0) or 0) > 0:
            return MLPSpec(kind="moe", activation=activation, moe=GRANITE_HYBRID_MOE.moe_spec(config))
        return MLPSpec(kind="dense", intermediate_size=int(require(config, "shared_intermediate_size")),
                       activation=activation)

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.layer_types = ["linear_attention" if layer.attention.kind == "mamba" else self._hf_type(layer)
                              for layer in layers]
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        att, mlp = layer.attention, layer.mlp
        if att.kind not in ("mamba", "full") or mlp.kind not in ("moe", "dense"):
            raise UnsupportedModelError(f"model_type {spec.model_type!r}: a layer is a Mamba-2 or full-attention "
                                        f"mixer and an MLP; this one asks for {att.kind!r} with {mlp.kind!r}")
        # the base adapter sets the attention fields; the MLP's are this family's own (below)
        config = super().config_for_layer(spec, LayerSpec(attention=att, mlp=MLPSpec(kind="none")), base)
        if att.kind == "mamba" and att.mamba is not None:
            write_mixer(config, att.mamba, int(spec.hidden_size))
        if mlp.kind == "moe" and mlp.moe is not None:
            GRANITE_HYBRID_MOE.set_moe_fields(config, mlp.moe)
        else:
            config.num_local_experts = 0
            config.shared_intermediate_size = mlp.intermediate_size
        return config

    @property
    def routed_experts_path(self) -> str:
        return GRANITE_HYBRID_MOE.experts_path

