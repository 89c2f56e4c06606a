"""The adapter for Kimi-Linear (`kimi_linear`): KDA linear attention + MLA without positions, MoE.

Kimi-Linear-48B-A3B interleaves Kimi Delta Attention layers (a recurrent state of
`linear_num_heads` x `linear_head_dim`² values per sequence and a `linear_conv_kernel_dim` short
conv over q / k / v) with multi-head latent attention layers (DeepSeek's MLA sizes:
`kv_lora_rank`, `qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`, optional `q_lora_rank`; no
RoPE, but the rope-sized key slice is still projected and cached), 3:1. The checkpoint writes
the split as `linear_attn_config` (`kda_layers` / `full_attn_layers`, 1-indexed, plus the KDA
head count, width and conv kernel), which transformers turns into `layer_types`; the first
`first_k_dense_replace` MLPs are dense (`intermediate_size`), the rest DeepSeek-style MoE under
Kimi's names (`num_experts`, `num_experts_per_token`, `moe_intermediate_size`,
`num_shared_experts`, grouped sigmoid routing `num_expert_group` / `topk_group`).

Maps a stack of layer specs back to `layer_types` / `mlp_layer_types`. Must not know about
capture or costs (the swapped forwards live in `models/kimi_linear.py`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError
from ..spec import AttentionSpec, LayerSpec, LinearAttentionSpec, MLPSpec, ModelSpec
from .base import CORE_FIELDS, require
from .deepseek import DeepseekAdapter
from .moe import MoEFamily

# Kimi's names (transformers' KimiLinearConfig maps num_experts_per_tok / num_shared_experts /
# num_expert_group onto the written num_experts_per_token / num_shared_experts / num_expert_group)
KIMI_LINEAR_MOE = MoEFamily(num_experts="num_experts", shared_count="num_shared_experts", router="sigmoid",
                            groups=("num_expert_group", "topk_group"), shared_module="shared_experts")
# a written config gives the layer split and KDA sizes in one object, or (serialized by transformers) as fields
LINEAR_FIELDS = ("layer_types", "linear_num_heads", "linear_head_dim")


@dataclass(frozen=True)
class KimiLinearAdapter(DeepseekAdapter):
    """KDA (linear) + MLA (no RoPE) layers; dense first MLPs, then MoE."""

    moe_family: MoEFamily = KIMI_LINEAR_MOE

    def required_fields(self) -> tuple[str, ...]:
        return (*CORE_FIELDS, "intermediate_size", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                "v_head_dim", "num_experts", "num_experts_per_token", "moe_intermediate_size")

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        super().check_given(data, source)
        if not isinstance(data.get("linear_attn_config"), Mapping) and any(data.get(f) is None for f in LINEAR_FIELDS):
            raise MalformedConfigError(
                f"{source}: config of model_type 'kimi_linear' lacks linear_attn_config (kda_layers, "
                f"full_attn_layers, num_heads, head_dim) or its serialized fields {', '.join(LINEAR_FIELDS)}; "
                "transformers' defaults for them would describe another model")

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        if self.hf_layer_types(config)[index] != "linear_attention":
            return super().attention_spec(config, index)
        heads, width = int(require(config, "linear_num_heads")), int(require(config, "linear_head_dim"))
        return AttentionSpec(kind="linear", linear=LinearAttentionSpec(
            num_key_heads=heads, num_value_heads=heads, key_head_dim=width, value_head_dim=width,
            conv_kernel_size=int(require(config, "linear_conv_kernel_dim"))))

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        activation = str(getattr(config, self.activation_field, "silu"))
        if self.is_moe_layer(config, index):
            return MLPSpec(kind="moe", activation=activation, moe=self.moe_family.moe_spec(config))
        return MLPSpec(kind="dense", intermediate_size=int(require(config, "intermediate_size")), activation=activation)

    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.layer_types = ["linear_attention" if layer.attention.kind == "linear" else "full_attention"
                              for layer in layers]
        config.mlp_layer_types = ["sparse" if layer.mlp.kind == "moe" else "dense" for layer in layers]
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = super().config_for_layer(spec, layer, base)  # MLA heads, the dense width or the experts
        att = layer.attention
        if att.kind == "linear" and att.linear is not None:
            config.linear_num_heads = att.linear.num_value_heads
            config.linear_head_dim = att.linear.value_head_dim
            config.linear_conv_kernel_dim = att.linear.conv_kernel_size
        return config
