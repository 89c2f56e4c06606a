"""The adapter contract, and the adapter for standard pre-norm decoder families.

An adapter owns one family's translation between HF configs and the engine's `ModelSpec`:

- `to_spec(config, name)`: read HF field names once, produce the typed spec;
- `config_for_layers(spec, layers)`: a HF config whose decoder stack is exactly `layers` (used to
  build the representative model: one layer per kind);
- `config_for_layer(spec, layer, base)`: `base` with the global fields that shape one layer set
  for `layer` (used to rebuild a layer whose spec differs from what the stack config gives it,
  e.g. a per-layer intermediate size).

`DecoderAdapter` handles the families whose config uses the standard names (`hidden_size`,
`num_attention_heads`, `num_key_value_heads`, `head_dim`, `intermediate_size`, `layer_types`,
`sliding_window`). Families differ by a few class attributes (the adapter table in
`adapters/__init__.py` instantiates them); MoE/MLA/linear-attention families subclass it.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError
from ..config_checks import check_required
from ..spec import GQA_KINDS, AttentionSpec, LayerSpec, MLPSpec, ModelSpec

# Fields every decoder's config must give: transformers' defaults for them describe another model.
CORE_FIELDS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")

HF_LAYER_TYPE = {"full": "full_attention", "sliding": "sliding_attention", "chunked": "chunked_attention",
                 "linear": "linear_attention"}
SPEC_ATTENTION_KIND = {v: k for k, v in HF_LAYER_TYPE.items()}


def require(config: PretrainedConfig, name: str) -> Any:
    """A config field that must be present (a clear error instead of an AttributeError)."""
    value = getattr(config, name, None)
    if value is None:
        raise MalformedConfigError(
            f"config of model_type {config.model_type!r} lacks required field {name!r}"
        )
    return value


def with_aliases(data: Mapping[str, Any], model_type: str) -> dict[str, Any]:
    """`data` with each field its config class aliases (`attribute_map`) also under the other name."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        aliases = dict(getattr(CONFIG_MAPPING[model_type], "attribute_map", None) or {})
    except KeyError:
        aliases = {}
    out = dict(data)
    for alias, name in aliases.items():
        if out.get(name) is None and data.get(alias) is not None:
            out[name] = data[alias]
        if out.get(alias) is None and data.get(name) is not None:
            out[alias] = data[name]
    return out


@dataclass(frozen=True)
class DecoderAdapter:
    """Standard decoder: embeddings, N x (norm, attention, norm, MLP), final norm, lm_head."""

    model_types: tuple[str, ...]
    # Attention projections: (q/k/v bias, output bias), from the config (None: no bias).
    qkv_bias_field: str | None = "attention_bias"
    out_bias_field: str | None = "attention_bias"
    qkv_bias_always: bool = False  # Qwen2: q/k/v always carry a bias
    qk_norm: bool = False  # Qwen3 / OLMo2 style per-head RMSNorm on q and k
    # True when the family applies `sliding_window` to every layer (Mistral): no `layer_types`.
    window_applies_to_all_layers: bool = False
    activation_field: str = "hidden_act"
    mlp_bias_field: str | None = "mlp_bias"
    layers_path: str = "model.layers"
    supports_layer_skips: bool = True  # layers have input_layernorm/self_attn/post_attention_layernorm/mlp
    # each layer holds one mixer (Nemotron-H): a "none" attention or MLP is the family's own layout
    single_mixer_blocks: bool = False
    # Checkpoint tensors the published checkpoints store in float32 (name suffixes): the sigmoid
    # routers' expert-bias correction (DeepSeek-V3's reference code creates it float32; GLM-4.5,
    # MiniMax-M2, MiMo and ERNIE ship it so). Every other parameter is stored in the checkpoint's
    # dtype, whatever dtype a transformers release creates it in.
    fp32_parameters: tuple[str, ...] = ("e_score_correction_bias",)
    # fields this family's transformers config leaves without a usable default (Hunyuan: head_dim None)
    extra_required: tuple[str, ...] = ()
    # why this family's shipped MTP layers are not built (None: they are built like its last layer)
    mtp_not_modelled: str | None = None

    # ---- HF config -> spec -------------------------------------------------------------
    def required_fields(self) -> tuple[str, ...]:
        """Config fields this family cannot default (the others' defaults are what its published
        configs rely on: head_dim, num_key_value_heads, biases, ...)."""
        return (*CORE_FIELDS, "intermediate_size", *self.extra_required)

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        """Refuse a config.json (as a dict) that omits required fields, naming all of them. A field
        given under its config class's alias (`attribute_map`, e.g. num_experts / num_local_experts)
        counts as given."""
        model_type = str(data.get("model_type", self.model_types[0]))
        check_required(with_aliases(data, model_type), self.required_fields(), source, model_type)

    def derived_fields(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """Fields to add to a config.json's contents before transformers reads them: what the family's
        config class would drop and the spec needs (DeepSeek-V4: the MTP layer's attention kind)."""
        return {}

    def to_spec(self, config: PretrainedConfig, name: str) -> ModelSpec:
        num_layers = int(require(config, "num_hidden_layers"))
        layers = tuple(self.layer_spec(config, i) for i in range(num_layers))
        return ModelSpec(
            name=name,
            model_type=config.model_type,
            architecture=self.architecture(config),
            hidden_size=int(require(config, "hidden_size")),
            vocab_size=int(require(config, "vocab_size")),
            layers=layers,
            tie_word_embeddings=bool(getattr(config, "tie_word_embeddings", False)),
            dtype=self.dtype(config),
            max_position_embeddings=int(getattr(config, "max_position_embeddings", 0) or 0),
            mtp_layers=int(getattr(config, "num_nextn_predict_layers", 0) or 0),
            quantization=getattr(config, "quantization_config", None),
            hf_config=config.to_dict(),
        )

    def mtp_block_specs(self, spec: ModelSpec) -> tuple[LayerSpec, ...]:
        """The decoder layers inside one MTP block: one layer built like the full model's last
        (DeepSeek-V3 §2.2; GLM, Qwen3-Next, Qwen3.5 alike); from the config when the spec was cut to
        its first layers."""
        depth = int(spec.hf_config.get("num_hidden_layers", 0) or 0)
        if depth <= 0 or depth == spec.num_layers:
            return (spec.layers[-1],)
        return (self.layer_spec(self.base_config(spec), depth - 1),)

    def mtp_refusal(self, spec: ModelSpec) -> str | None:
        """Why this family's shipped MTP block cannot be built (None: it can)."""
        return self.mtp_not_modelled

    def architecture(self, config: PretrainedConfig) -> str:
        archs = getattr(config, "architectures", None) or []
        return archs[0] if archs else f"{type(config).__name__.removesuffix('Config')}ForCausalLM"

    def dtype(self, config: PretrainedConfig) -> str:
        # transformers 5 reads a config.json's `torch_dtype` into `dtype`; its `torch_dtype` property
        # only logs a deprecation warning, so it is never read here
        dt = getattr(config, "dtype", None)
        text = str(dt).removeprefix("torch.") if dt is not None else "bfloat16"
        return text if text in ("bfloat16", "float16", "float32") else "bfloat16"

    def hf_layer_types(self, config: PretrainedConfig) -> list[str]:
        num_layers = int(require(config, "num_hidden_layers"))
        types = getattr(config, "layer_types", None)
        if types:
            if len(types) < num_layers:
                raise MalformedConfigError(
                    f"layer_types has {len(types)} entries but num_hidden_layers is {num_layers}"
                )
            return list(types[:num_layers])
        if self.window_applies_to_all_layers and getattr(config, "sliding_window", None):
            return ["sliding_attention"] * num_layers
        return ["full_attention"] * num_layers

    def layer_spec(self, config: PretrainedConfig, index: int) -> LayerSpec:
        return LayerSpec(attention=self.attention_spec(config, index), mlp=self.mlp_spec(config, index))

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        hf_type = self.hf_layer_types(config)[index]
        kind = SPEC_ATTENTION_KIND.get(hf_type)
        if kind is None:
            raise UnsupportedModelError(
                f"model_type {config.model_type!r}: layer type {hf_type!r} is not supported by this adapter "
                f"(supported: {', '.join(SPEC_ATTENTION_KIND)})"
            )
        heads = int(require(config, "num_attention_heads"))
        kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or int(require(config, "hidden_size")) // heads)
        window = int(config.sliding_window) if kind == "sliding" else None
        chunk = int(require(config, "attention_chunk_size")) if kind == "chunked" else None
        return AttentionSpec(
            kind=kind,
            num_heads=heads,
            num_kv_heads=kv_heads,
            head_dim=head_dim,
            window=window,
            chunk=chunk,
            qk_norm=self.qk_norm,
            qkv_bias=self.qkv_bias_always or self._flag(config, self.qkv_bias_field),
            out_bias=self._flag(config, self.out_bias_field),
        )

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        return MLPSpec(
            kind="dense",
            intermediate_size=int(require(config, "intermediate_size")),
            activation=str(getattr(config, self.activation_field, "silu")),
            bias=self._flag(config, self.mlp_bias_field),
        )

    @staticmethod
    def _flag(config: PretrainedConfig, field: str | None) -> bool:
        return bool(getattr(config, field, False)) if field else False

    # ---- spec -> HF config ---------------------------------------------------------------
    def config_for_layers(self, spec: ModelSpec, layers: Sequence[LayerSpec]) -> PretrainedConfig:
        """A config whose stack is `layers` (per-layer list fields set to match)."""
        config = self.base_config(spec)
        config.num_hidden_layers = len(layers)
        if "layer_types" in config.to_dict() or getattr(config, "layer_types", None) is not None:
            config.layer_types = [self._hf_type(layer) for layer in layers]
        return self.config_for_layer(spec, layers[0], config)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        """`base` with the global fields that shape one layer set for `layer`."""
        config = copy.deepcopy(base)
        att = layer.attention
        if att.kind in GQA_KINDS:
            config.num_attention_heads = att.num_heads
            config.num_key_value_heads = att.num_kv_heads
            config.head_dim = att.head_dim
            if att.kind == "sliding":
                config.sliding_window = att.window
            elif att.kind == "chunked":
                config.attention_chunk_size = att.chunk
            elif self.window_applies_to_all_layers:
                config.sliding_window = None
        if layer.mlp.kind == "dense":
            config.intermediate_size = layer.mlp.intermediate_size
        return config

    def base_config(self, spec: ModelSpec, **fields: Any) -> PretrainedConfig:
        """The spec's HF config rebuilt (with `fields` replacing its own: a stack's per-layer lists)."""
        from transformers import AutoConfig

        data = {**spec.hf_config, **fields}
        model_type = data.pop("model_type", spec.model_type)
        for key in ("transformers_version", "architectures", "auto_map", "_name_or_path"):
            data.pop(key, None)
        return AutoConfig.for_model(model_type, **data)

    def _hf_type(self, layer: LayerSpec) -> str:
        kind = layer.attention.kind
        if kind == "none":  # a skipped attention block keeps its slot's type
            return "full_attention"
        return HF_LAYER_TYPE.get(kind, "full_attention")
