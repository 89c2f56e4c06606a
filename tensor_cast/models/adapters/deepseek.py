"""The adapter for DeepSeek-V3-style models: MLA attention, dense first layers, then MoE.

Covers `deepseek_v3` (DeepSeek-V3, DeepSeek-R1, Kimi-K2 through the `kimi_k2` alias;
`glm4_moe_lite`, GLM-4.7-Flash, is the same layout under GLM's class names; `deepseek_v2`,
DeepSeek-V2 / V2.5 / V2-Lite, its predecessor: softmax routing, RoPE by a complex table),
`deepseek_v32` (DeepSeek-V3.2: MLA with a sparse-attention indexer) and `glm_moe_dsa` (GLM-5: the
same layout with GLM's sizes). Reads the MLA sizes (`q_lora_rank`, `kv_lora_rank`,
`qk_nope_head_dim`, `qk_rope_head_dim`, `v_head_dim`), the indexer (`index_topk`,
`index_n_heads`, `index_head_dim`), which layers are MoE (`mlp_layer_types`, else
`first_k_dense_replace`) and the routed/shared experts with DeepSeek's grouped sigmoid routing
(`n_routed_experts`, `num_experts_per_tok`, `moe_intermediate_size`, `n_shared_experts`,
`scoring_func`, `n_group`, `topk_group`).

Maps a stack of layer specs back to the HF fields that shape it (the dense prefix, the per-layer
MoE and DSA lists). Must not know about capture or costs.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

from transformers import PretrainedConfig

from ...errors import UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MLASpec, MLPSpec, ModelSpec, MoESpec
from .base import CORE_FIELDS, DecoderAdapter, require
from .moe import MoEFamily

# DeepSeek's names for the routed/shared experts and its grouped top-k (n_group / topk_group).
DEEPSEEK_MOE = MoEFamily(num_experts="n_routed_experts", shared_count="n_shared_experts", router="sigmoid",
                         groups=("n_group", "topk_group"), shared_module="shared_experts")


def deepseek_moe_spec(config: PretrainedConfig) -> MoESpec:
    """Routed + shared experts as DeepSeek configs name them (`scoring_func` picks the router)."""
    router = "sigmoid" if getattr(config, "scoring_func", "softmax") == "sigmoid" else "softmax"
    return dataclasses.replace(DEEPSEEK_MOE.moe_spec(config), router=router)


@dataclass(frozen=True)
class DeepseekAdapter(DecoderAdapter):
    """MLA + (dense | MoE) layers; `sparse_index`: every layer runs DeepSeek sparse attention."""

    sparse_index: bool = False
    moe_family: MoEFamily = DEEPSEEK_MOE  # how the config names the experts (Kimi-Linear: its own names)
    qkv_bias_field: str | None = "attention_bias"
    out_bias_field: str | None = "attention_bias"
    mlp_bias_field: str | None = None

    # ---- HF config -> spec -------------------------------------------------------------
    def required_fields(self) -> tuple[str, ...]:
        moe = DEEPSEEK_MOE
        return (*CORE_FIELDS, "intermediate_size", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim",
                "v_head_dim", moe.num_experts, moe.top_k, moe.expert_size,
                *(("index_topk", "index_n_heads", "index_head_dim") if self.sparse_index else ()))

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        heads = int(require(config, "num_attention_heads"))
        nope, rope = int(require(config, "qk_nope_head_dim")), int(require(config, "qk_rope_head_dim"))
        q_lora = getattr(config, "q_lora_rank", None)
        index_fields = {}
        if self.sparse_index:
            shared = [i for i, t in enumerate(getattr(config, "indexer_types", None) or []) if t != "full"]
            if shared:
                raise UnsupportedModelError(
                    f"model_type {config.model_type!r}: layers {shared[:8]} reuse another layer's sparse-attention "
                    "top-k (indexer_types 'shared'); only configs where every layer runs its own indexer are supported")
            index_fields = dict(index_topk=int(require(config, "index_topk")),
                                index_n_heads=int(require(config, "index_n_heads")),
                                index_head_dim=int(require(config, "index_head_dim")))
        mla = MLASpec(q_lora_rank=int(q_lora) if q_lora else None, kv_lora_rank=int(require(config, "kv_lora_rank")),
                      qk_nope_head_dim=nope, qk_rope_head_dim=rope, v_head_dim=int(require(config, "v_head_dim")),
                      **index_fields)
        return AttentionSpec(kind="mla", num_heads=heads, num_kv_heads=heads, head_dim=nope + rope,
                             qkv_bias=self._flag(config, self.qkv_bias_field),
                             out_bias=self._flag(config, self.out_bias_field), mla=mla)

    def is_moe_layer(self, config: PretrainedConfig, index: int) -> bool:
        types = getattr(config, "mlp_layer_types", None)
        if types:
            return types[index] == "sparse"
        return index >= int(getattr(config, "first_k_dense_replace", 0) or 0)

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        activation = str(getattr(config, self.activation_field, "silu"))
        if self.is_moe_layer(config, index):
            return MLPSpec(kind="moe", activation=activation, moe=deepseek_moe_spec(config))
        return MLPSpec(kind="dense", intermediate_size=int(require(config, "intermediate_size")), activation=activation)

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        moe = [layer.mlp.kind == "moe" for layer in layers]
        dense_prefix = moe.index(True) if True in moe else len(moe)
        if any(not m for m in moe[dense_prefix:]) and not hasattr(self.base_config(spec), "mlp_layer_types"):
            raise UnsupportedModelError(
                f"model_type {spec.model_type!r}: a dense layer after a MoE layer cannot be expressed with "
                "first_k_dense_replace")
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.first_k_dense_replace = dense_prefix
        if getattr(config, "mlp_layer_types", None) is not None:
            config.mlp_layer_types = ["sparse" if m else "dense" for m in moe]
        if getattr(config, "layer_types", None) is not None:
            config.layer_types = [config.layer_types[0]] * len(layers)
        if getattr(config, "indexer_types", None) is not None:
            config.indexer_types = ["full"] * len(layers)
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = copy.deepcopy(base)
        att = layer.attention
        if att.kind == "mla" and att.mla is not None:
            config.num_attention_heads = att.num_heads
            config.num_key_value_heads = att.num_kv_heads
        if layer.mlp.kind == "dense":
            config.intermediate_size = layer.mlp.intermediate_size
        elif layer.mlp.kind == "moe" and layer.mlp.moe is not None:
            self.moe_family.set_moe_fields(config, layer.mlp.moe)
        return config

    @property
    def routed_experts_path(self) -> str:
        return self.moe_family.experts_path
