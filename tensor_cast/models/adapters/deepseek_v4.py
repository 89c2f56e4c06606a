"""The adapter for DeepSeek-V4 (`deepseek_v4`: DeepSeek-V4-Flash, DeepSeek-V4-Pro).

Every layer attends over one shared K = V head of `head_dim` with a sliding window of
`sliding_window` tokens (`qk_rope_head_dim` of it rotated), queries through `q_lora_rank`, the
output through `o_groups` grouped projections of `o_lora_rank`; `layer_types` (transformers' reading
of the checkpoint's `compress_ratios`: 0 / 4 / 128 per layer) adds compressed entries — one per 4
tokens picked `index_topk` at a time by an `index_n_heads` x `index_head_dim` lightning indexer
(`compressed_sparse_attention`), or one per 128 tokens all attended (`heavily_compressed_attention`).
Every MLP is MoE (`n_routed_experts` of `moe_intermediate_size`, `num_experts_per_tok`, one shared
expert of the same width), the first `num_hash_layers` routed by a token-id table (`hash_moe`),
the rest by `scoring_func` (sqrt-softplus) top-k; the residual is `hc_mult` hyper-connection streams.

Maps a stack of layer specs back to `layer_types` / `mlp_layer_types`. Must not know about capture
or costs (the swapped forwards live in `models/deepseek_v4.py`). The checkpoint's MTP layers
(`num_nextn_predict_layers`) are V4 decoder layers whose attention kind is `compress_ratios`' entries
past `num_hidden_layers` (V4-Flash: 0, a sliding-window layer without compressor); transformers'
config drops those entries, so `derived_fields` keeps them as `mtp_layer_types` and `--mtp` is refused
in one line for a config that does not give them. Their routing is top-k (never hash: the MTP layer
index is past `num_hash_layers`). The block around them is `models/mtp.py`'s hyper-connection block.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError
from ..spec import AttentionSpec, CompressedAttentionSpec, LayerSpec, MLPSpec, ModelSpec
from .base import CORE_FIELDS, DecoderAdapter, require
from .deepseek import DEEPSEEK_MOE

SLIDING, CSA, HCA = "sliding_attention", "compressed_sparse_attention", "heavily_compressed_attention"
HASH_MOE = "hash_moe"
EXPERT_DTYPE = "fp4"  # the released checkpoints' routed experts (safetensors: int8-packed E2M1 + float8_e8m0 scales)
# projections the released FP8 checkpoints store in bf16 (safetensors: compressor / indexer-compressor wkv and
# wgate, indexer weights_proj; the MoE gate is a router, kept 16-bit anyway)
BF16_MODULES = ("*compressor.kv_proj", "*compressor.gate_proj", "*indexer.kv_proj", "*indexer.gate_proj",
                "*weights_proj")


@dataclass(frozen=True)
class DeepseekV4Adapter(DecoderAdapter):
    """Sliding-window + compressed (CSA / HCA) attention, hyper-connections, MoE in every layer."""

    qkv_bias_field: str | None = None
    out_bias_field: str | None = None
    mlp_bias_field: str | None = None
    # float32 in the released safetensors: hyper-connection mixing weights (hc_*_fn / base / scale, hc_head_*),
    # attention sinks, compressor position biases (`ape`); norms and everything else bf16 / FP8 / FP4
    fp32_parameters: tuple[str, ...] = ("e_score_correction_bias", ".fn", ".base", ".scale", ".sinks",
                                        ".position_bias", ".hc_fn", ".hc_base", ".hc_scale")

    def required_fields(self) -> tuple[str, ...]:
        return (*CORE_FIELDS, "head_dim", "q_lora_rank", "qk_rope_head_dim", "sliding_window", "o_groups",
                "o_lora_rank", "n_routed_experts", "num_experts_per_tok", "moe_intermediate_size", "index_topk",
                "index_n_heads", "index_head_dim")

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        super().check_given(data, source)
        shared = data.get("n_shared_experts", 1)
        if shared not in (None, 1):  # transformers' DeepseekV4SparseMoeBlock builds exactly one shared MLP
            raise MalformedConfigError(f"{source}: n_shared_experts={shared!r}: DeepSeek-V4's MoE block has one "
                                       "shared expert; accepted: 1")
        heads, groups = data.get("num_attention_heads"), data.get("o_groups")
        if isinstance(heads, int) and isinstance(groups, int) and groups and heads % groups:
            raise MalformedConfigError(f"{source}: o_groups={groups} does not divide num_attention_heads={heads}")

    def to_spec(self, config: PretrainedConfig, name: str) -> ModelSpec:
        spec = super().to_spec(config, name)
        quant = dict(spec.quantization or {})
        if quant and "expert_dtype" not in quant:
            # DeepSeek's FP8 checkpoints store the routed experts as FP4 (E2M1, an E8M0 scale per 32):
            # their inference code's ModelArgs.expert_dtype defaults to "fp4" where config.json is silent
            quant["expert_dtype"] = getattr(config, "expert_dtype", None) or EXPERT_DTYPE
        if quant and not any(quant.get(k) for k in ("modules_to_not_convert", "ignored_layers", "ignore")):
            quant["modules_to_not_convert"] = list(BF16_MODULES)
        return dataclasses.replace(spec, quantization=quant or spec.quantization)

    def derived_fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """`mtp_layer_types`: the attention kinds of `compress_ratios`' entries past the main layers."""
        ratios, layers = data.get("compress_ratios"), data.get("num_hidden_layers")
        if not isinstance(ratios, list) or not isinstance(layers, int) or len(ratios) <= layers:
            return {}
        kinds = {0: SLIDING, data.get("compress_rate_csa", 4): CSA, data.get("compress_rate_hca", 128): HCA}
        extra = ratios[layers:]
        return {"mtp_layer_types": [kinds[r] for r in extra]} if all(r in kinds for r in extra) else {}

    def mtp_refusal(self, spec: ModelSpec) -> str | None:
        kinds = spec.hf_config.get("mtp_layer_types") or []
        if not kinds:
            return ("its config does not give the MTP layer's attention kind (compress_ratios has no entry past "
                    "num_hidden_layers)")
        if len(set(kinds)) > 1:
            return f"its MTP layers are of different attention kinds {kinds}; one kind is modelled"
        return None

    def mtp_block_specs(self, spec: ModelSpec) -> tuple[LayerSpec, ...]:
        """One V4 decoder layer of the MTP entry's attention kind under top-k routing (() when refused)."""
        if self.mtp_refusal(spec) is not None:
            return ()
        config = self.base_config(spec)
        kind = str(spec.hf_config["mtp_layer_types"][0])
        return (LayerSpec(attention=self._attention(config, kind), mlp=self._mlp(config, hashed=False)),)

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        return self._attention(config, self.hf_layer_types(config)[index])

    def _attention(self, config: PretrainedConfig, kind: str) -> AttentionSpec:
        rates = dict(getattr(config, "compress_rates", None) or {})
        ratio = 0 if kind == SLIDING else int(rates[kind])
        index_fields = dict(index_topk=int(require(config, "index_topk")),
                            index_n_heads=int(require(config, "index_n_heads")),
                            index_head_dim=int(require(config, "index_head_dim"))) if kind == CSA else {}
        compressed = CompressedAttentionSpec(
            q_lora_rank=int(require(config, "q_lora_rank")), rope_dim=int(require(config, "qk_rope_head_dim")),
            window=int(require(config, "sliding_window")), compress_ratio=ratio,
            o_groups=int(require(config, "o_groups")), o_lora_rank=int(require(config, "o_lora_rank")), **index_fields)
        return AttentionSpec(kind="compressed", num_heads=int(require(config, "num_attention_heads")), num_kv_heads=1,
                             head_dim=int(require(config, "head_dim")), sinks=True, compressed=compressed)

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        return self._mlp(config, hashed=(getattr(config, "mlp_layer_types", None) or [])[index] == HASH_MOE)

    def _mlp(self, config: PretrainedConfig, *, hashed: bool) -> MLPSpec:
        router = "hash" if hashed else str(getattr(config, "scoring_func", "sqrtsoftplus"))
        moe = dataclasses.replace(DEEPSEEK_MOE.moe_spec(config), router=router)
        return MLPSpec(kind="moe", activation=str(getattr(config, self.activation_field, "silu")), moe=moe)

    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        config.layer_types = [_hf_layer_type(layer) for layer in layers]
        config.mlp_layer_types = [HASH_MOE if layer.mlp.moe is not None and layer.mlp.moe.router == "hash" else "moe"
                                  for layer in layers]
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = copy.deepcopy(base)
        att = layer.attention
        if att.kind == "compressed" and att.compressed is not None:
            config.num_attention_heads = att.num_heads
            config.o_groups = att.compressed.o_groups
        if layer.mlp.kind == "moe" and layer.mlp.moe is not None:
            DEEPSEEK_MOE.set_moe_fields(config, layer.mlp.moe)
        return config

    @property
    def routed_experts_path(self) -> str:
        return DEEPSEEK_MOE.experts_path


def _hf_layer_type(layer: LayerSpec) -> str:
    c = layer.attention.compressed
    if c is None or not c.compress_ratio:
        return SLIDING
    return CSA if c.index_topk else HCA
