"""The adapter for hybrid linear/full-attention models: Qwen3-Next and Qwen3.5 (MoE and dense, text).

`layer_types` says which layers are gated DeltaNet (`linear_attention`: a recurrent state sized by
`linear_num_key_heads` / `linear_num_value_heads` x `linear_key_head_dim` /
`linear_value_head_dim`, with a `linear_conv_kernel_dim` causal conv) and which are gated full
attention (GQA with a per-head q/k norm and a sigmoid output gate). The MLP is MoE
(`num_experts`, `num_experts_per_tok`, `moe_intermediate_size`, and a gated shared expert of
`shared_expert_intermediate_size`) except in Qwen3-Next's `mlp_only_layers` or off the
`decoder_sparse_step` grid (dense `intermediate_size`); Qwen3.5's dense models (`qwen3_5_text`,
e.g. Qwen3.5-27B) have a dense MLP in every layer. Both ship one MTP layer (Qwen3-Next's is
implied by its checkpoint, Qwen3.5 says `mtp_num_hidden_layers`).

Maps a stack of layer specs back to `layer_types` / `mlp_only_layers`. Must not know about
capture or costs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PretrainedConfig

from ...errors import UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, LinearAttentionSpec, MLPSpec, ModelSpec
from .base import CORE_FIELDS, DecoderAdapter, require
from .moe import MoEFamily

# Qwen3-Next / Qwen3.5 name one shared expert by its total width.
QWEN_NEXT_MOE = MoEFamily(num_experts="num_experts", shared_size="shared_expert_intermediate_size",
                          shared_module="shared_expert")


@dataclass(frozen=True)
class HybridLinearAdapter(DecoderAdapter):
    """Gated DeltaNet + gated full attention layers, MoE (or dense) MLPs."""

    qk_norm: bool = True
    out_bias_field: str | None = "attention_bias"
    mlp_bias_field: str | None = None
    dense_layers_field: str | None = "mlp_only_layers"  # None: every layer is MoE
    mtp_field: str | None = None  # config field counting MTP layers
    shipped_mtp_layers: int = 0  # MTP layers the checkpoints ship when the config does not say
    moe: bool = True  # False: every MLP is dense (Qwen3.5's dense models, `qwen3_5_text`)

    def to_spec(self, config: PretrainedConfig, name: str) -> ModelSpec:
        spec = super().to_spec(config, name)
        mtp = getattr(config, self.mtp_field, None) if self.mtp_field else None
        return dataclasses.replace(spec, mtp_layers=int(mtp if mtp is not None else self.shipped_mtp_layers))

    # ---- HF config -> spec -------------------------------------------------------------
    def required_fields(self) -> tuple[str, ...]:
        moe = QWEN_NEXT_MOE
        experts = (moe.num_experts, moe.top_k, moe.expert_size) if self.moe else ()
        return (*CORE_FIELDS, "linear_num_key_heads", "linear_num_value_heads", "linear_key_head_dim",
                "linear_value_head_dim", "linear_conv_kernel_dim", *experts,
                *(("intermediate_size",) if self.dense_layers_field or not self.moe else ()))

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        if self.hf_layer_types(config)[index] != "linear_attention":
            return super().attention_spec(config, index)
        linear = LinearAttentionSpec(
            num_key_heads=int(require(config, "linear_num_key_heads")),
            num_value_heads=int(require(config, "linear_num_value_heads")),
            key_head_dim=int(require(config, "linear_key_head_dim")),
            value_head_dim=int(require(config, "linear_value_head_dim")),
            conv_kernel_size=int(require(config, "linear_conv_kernel_dim")),
        )
        return AttentionSpec(kind="linear", linear=linear)

    def is_moe_layer(self, config: PretrainedConfig, index: int) -> bool:
        if not self.moe or int(getattr(config, "num_experts", 0) or 0) <= 0:
            return False
        if self.dense_layers_field is None:
            return True
        dense = getattr(config, self.dense_layers_field, None) or []
        step = int(getattr(config, "decoder_sparse_step", 1) or 1)
        return index not in dense and (index + 1) % step == 0

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        activation = str(getattr(config, self.activation_field, "silu"))
        if not self.is_moe_layer(config, index):
            return MLPSpec(kind="dense", intermediate_size=int(require(config, "intermediate_size")),
                           activation=activation)
        return MLPSpec(kind="moe", activation=activation, moe=QWEN_NEXT_MOE.moe_spec(config))

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.layer_types = ["linear_attention" if layer.attention.kind == "linear" else "full_attention"
                              for layer in layers]
        dense = [i for i, layer in enumerate(layers) if layer.mlp.kind == "dense"]
        if self.dense_layers_field is not None:
            setattr(config, self.dense_layers_field, dense)
            config.decoder_sparse_step = 1
        elif dense:
            raise UnsupportedModelError(f"model_type {spec.model_type!r} has no dense MLP layers; "
                                        f"layers {dense} of this stack ask for one")
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = copy.deepcopy(base)
        att = layer.attention
        if att.kind == "full":
            config.num_attention_heads = att.num_heads
            config.num_key_value_heads = att.num_kv_heads
            config.head_dim = att.head_dim
        elif att.kind == "linear" and att.linear is not None:
            config.linear_num_key_heads = att.linear.num_key_heads
            config.linear_num_value_heads = att.linear.num_value_heads
            config.linear_key_head_dim = att.linear.key_head_dim
            config.linear_value_head_dim = att.linear.value_head_dim
            config.linear_conv_kernel_dim = att.linear.conv_kernel_size
        if layer.mlp.kind == "dense":
            config.intermediate_size = layer.mlp.intermediate_size
        elif layer.mlp.kind == "moe" and layer.mlp.moe is not None:
            QWEN_NEXT_MOE.set_moe_fields(config, layer.mlp.moe)
        return config

    @property
    def routed_experts_path(self) -> str:
        return QWEN_NEXT_MOE.experts_path
