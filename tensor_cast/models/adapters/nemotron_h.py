"""The adapter for Nemotron-H (`nemotron_h`: Nemotron-H 4B-56B, Nemotron Nano 2, Nemotron 3 Nano).

Each decoder block holds one mixer after one RMSNorm, named per layer by `layers_block_type` (older
configs: `hybrid_override_pattern`, `M` / `*` / `-` / `E`, which transformers turns into the list):
- `linear_attention` (`M`): a Mamba-2 mixer — `mamba_num_heads` x `mamba_head_dim` channels, a state
  of `ssm_state_size` per channel, B / C in `n_groups` groups, a `conv_kernel` causal conv, the scan in
  chunks of `chunk_size`, the state cached in `mamba_ssm_cache_dtype`;
- `full_attention` (`*`): GQA without positional encoding;
- `mlp` (`-`): an ungated MLP of `intermediate_size` (`mlp_hidden_act`, squared ReLU);
- `moe` (`E`): ungated experts (`n_routed_experts`, top-`num_experts_per_tok`, `moe_intermediate_size`)
  under DeepSeek-V3's sigmoid grouped router, plus one shared MLP of
  `moe_shared_expert_intermediate_size`; with `moe_latent_size` (LatentMoE, Nemotron 3 Super) the
  routed experts work in that width behind the block's `fc1_latent_proj` / `fc2_latent_proj`
  (`MoESpec.latent_size`).

In the spec a Mamba or attention block is that attention kind with no MLP, an MLP or MoE block an MLP
with no attention (`kind="none"`): the family's own layout, not a skipped sub-block. The MTP block
(Nemotron 3 Super: one) is its own short stack of mixer blocks named by `mtp_hybrid_override_pattern`
(`*E`: attention, then MoE), each like the main stack's block of that type (`mtp_block_specs`).

Maps a stack of layer specs back to `layers_block_type`. Must not know about capture or costs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec
from .base import DecoderAdapter, require
from .mamba_fields import NEMOTRON_H_MAMBA
from .moe import MoEFamily

NEMOTRON_MOE = MoEFamily(num_experts="n_routed_experts", shared_size="moe_shared_expert_intermediate_size",
                         router="sigmoid", groups=("n_group", "topk_group"), block="mixer",
                         shared_module="shared_experts", latent_size="moe_latent_size")
MAMBA, ATTENTION, MLP, MOE = "linear_attention", "full_attention", "mlp", "moe"
BLOCK_TYPES = (MAMBA, ATTENTION, MLP, MOE)
# config.json field names before transformers' renames (NemotronHConfig.__post_init__)
LEGACY_NAMES = {"n_groups": "mamba_n_groups", "conv_kernel": "mamba_d_conv", "chunk_size": "mamba_chunk_size"}
FIELDS_BY_BLOCK = {MAMBA: NEMOTRON_H_MAMBA.sizes,
                   ATTENTION: ("num_attention_heads", "num_key_value_heads", "head_dim"),
                   MLP: ("intermediate_size",),
                   MOE: ("n_routed_experts", "num_experts_per_tok", "moe_intermediate_size",
                         "moe_shared_expert_intermediate_size")}
PATTERN = {"M": MAMBA, "*": ATTENTION, "-": MLP, "E": MOE}
# the MTP block types vLLM's drafter builds (pattern letters * and E: vllm/model_executor/models/nemotron_h_mtp.py)
MTP_BLOCKS = (ATTENTION, MOE)
LEGACY_BLOCKS = {"mamba": MAMBA, "attention": ATTENTION}  # list names transformers remaps


@dataclass(frozen=True)
class NemotronHAdapter(DecoderAdapter):
    """One mixer per block: Mamba-2, NoPE GQA attention, ungated MLP or ungated MoE."""

    activation_field: str = "mlp_hidden_act"
    qkv_bias_field: str | None = "attention_bias"
    out_bias_field: str | None = "attention_bias"
    supports_layer_skips: bool = False
    single_mixer_blocks: bool = True

    # ---- HF config -> spec -------------------------------------------------------------
    def required_fields(self) -> tuple[str, ...]:
        return ("hidden_size", "vocab_size")

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        """The block list (or pattern) and the fields each present block type reads."""
        listed = data.get("layers_block_type") or [PATTERN.get(c, c) for c in str(data.get("hybrid_override_pattern") or "")]
        blocks = [LEGACY_BLOCKS.get(b, b) for b in listed]
        if not blocks:
            raise MalformedConfigError(f"{source}: nemotron_h config gives neither layers_block_type nor "
                                       "hybrid_override_pattern")
        unknown = sorted({b for b in blocks if b not in BLOCK_TYPES})
        if unknown:
            raise MalformedConfigError(f"{source}: unknown block types {unknown}; accepted: {', '.join(BLOCK_TYPES)} "
                                       f"(pattern letters {', '.join(PATTERN)})")
        needed = [*self.required_fields()]
        for block in dict.fromkeys(blocks):  # num_key_value_heads and head_dim have usable defaults
            needed += [f for f in FIELDS_BY_BLOCK[block] if f not in ("num_key_value_heads", "head_dim")]
        missing = [f for f in dict.fromkeys(needed) if data.get(f) is None and data.get(LEGACY_NAMES.get(f, "")) is None]
        if missing:
            raise MalformedConfigError(f"{source}: model_type 'nemotron_h' config lacks required fields "
                                       f"{', '.join(missing)}")

    def hf_layer_types(self, config: PretrainedConfig) -> list[str]:
        return list(require(config, "layers_block_type"))

    def layer_spec(self, config: PretrainedConfig, index: int) -> LayerSpec:
        block = self.hf_layer_types(config)[index]
        none_attention, none_mlp = AttentionSpec(kind="none"), MLPSpec(kind="none")
        if block == MAMBA:
            state_dtype = str(getattr(config, "mamba_ssm_cache_dtype", None) or "bfloat16")
            return LayerSpec(attention=NEMOTRON_H_MAMBA.spec(config, state_dtype), mlp=none_mlp)
        if block == ATTENTION:
            return LayerSpec(attention=self.attention_spec(config, index), mlp=none_mlp)
        activation = str(getattr(config, self.activation_field, "relu2"))
        if block == MLP:
            return LayerSpec(attention=none_attention, mlp=MLPSpec(
                kind="dense", intermediate_size=int(require(config, "intermediate_size")), activation=activation,
                gated=False, bias=self._flag(config, "mlp_bias")))
        if block == MOE:
            return LayerSpec(attention=none_attention, mlp=MLPSpec(kind="moe", activation=activation, gated=False,
                                                                   moe=NEMOTRON_MOE.moe_spec(config)))
        raise UnsupportedModelError(f"model_type 'nemotron_h': block type {block!r} at layer {index}; "
                                    f"accepted: {', '.join(BLOCK_TYPES)}")

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.layers_block_type = [self.block_type(spec, layer) for layer in layers]
        return self.config_for_layer(spec, layers[0], config)

    # ---- the MTP block ------------------------------------------------------------------
    def mtp_block_specs(self, spec: ModelSpec) -> tuple[LayerSpec, ...]:
        """The MTP block's layers, one per entry of `mtp_layers_block_type` (transformers' list form
        of the config's `mtp_hybrid_override_pattern`; Nemotron 3 Super: `*E`, an attention block
        then a MoE block), each like the main stack's first block of its type; () when a listed
        type is one vLLM's drafter does not build (`mtp_refusal` says which)."""
        if self.mtp_refusal(spec) is not None:
            return ()
        config = self.base_config(spec)
        types = self.hf_layer_types(config)
        return tuple(self.layer_spec(config, types.index(block)) for block in self._mtp_blocks(spec))

    def mtp_refusal(self, spec: ModelSpec) -> str | None:
        blocks = self._mtp_blocks(spec)
        if not blocks:
            return "its config ships MTP layers but names none of their blocks (mtp_layers_block_type)"
        unknown = sorted({b for b in blocks if b not in MTP_BLOCKS})
        if unknown:
            return (f"its MTP block types {blocks} include {unknown}, which vLLM's Nemotron-H drafter does not "
                    f"build; accepted: {', '.join(MTP_BLOCKS)}")
        absent = sorted(set(blocks) - set(self.hf_layer_types(self.base_config(spec))))
        if absent:
            return f"its MTP block types {blocks} include {absent}, which the main stack lacks"
        return None

    @staticmethod
    def _mtp_blocks(spec: ModelSpec) -> list[str]:
        listed = spec.hf_config.get("mtp_layers_block_type") or [
            PATTERN.get(c, c) for c in str(spec.hf_config.get("mtp_hybrid_override_pattern") or "")]
        return [LEGACY_BLOCKS.get(b, b) for b in listed]

    @staticmethod
    def block_type(spec: ModelSpec, layer: LayerSpec) -> str:
        kinds = (layer.attention.kind, layer.mlp.kind)
        types = {("mamba", "none"): MAMBA, ("full", "none"): ATTENTION, ("none", "dense"): MLP, ("none", "moe"): MOE}
        if kinds not in types:
            raise UnsupportedModelError(
                f"model_type {spec.model_type!r}: a block holds one mixer (Mamba-2, full attention, MLP or MoE); "
                f"this layer asks for attention {kinds[0]!r} with MLP {kinds[1]!r}")
        return types[kinds]

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = super().config_for_layer(spec, layer, base)  # GQA heads, the dense MLP's intermediate_size
        att, mlp = layer.attention, layer.mlp
        if att.kind == "mamba" and att.mamba is not None:
            NEMOTRON_H_MAMBA.write(config, att.mamba)
        if mlp.kind == "moe" and mlp.moe is not None:
            NEMOTRON_MOE.set_moe_fields(config, mlp.moe)
        return config

    @property
    def routed_experts_path(self) -> str:
        return NEMOTRON_MOE.experts_path
