"""Adapters for multimodal configs whose language model is analyzed on its own.

`TextDecoderOf` owns one rule: a config with a `text_config` (Gemma 3 4B/12B/27B are
`Gemma3ForConditionalGeneration`) is analyzed as its text decoder — the serving cost of
generating tokens — with the vision tower left out (the report's notes say so). The spec it
returns carries the text model_type, so building and capture go through the text adapter: the one
of `texts` whose model types hold the text config's own (Mistral 3 holds a Mistral or a Ministral 3
decoder, by checkpoint); a text config that does not say its model_type takes a single `texts` entry.

`text_as` maps a text model_type transformers builds only inside its wrapper (Qwen3-VL's
`qwen3_vl_text` / `qwen3_vl_moe_text`: no causal-LM class of their own) onto the built-in decoder
whose modules compute the same text model. It is exact for text tokens only, which is what is
costed: Qwen3-VL's decoder is Qwen3's (GQA with per-head q/k RMSNorm, SwiGLU; Qwen3-MoE's softmax
top-k router with the top-k renormalized, which Qwen3-VL-MoE always does), its interleaved M-RoPE
rotates a text token by its one position in all three sections (plain RoPE, same cost), and
DeepStack adds visual features only at image-token positions. `wrapper_ties_embeddings`: the
wrapper's `tie_word_embeddings` decides whether the LM head is the embedding (transformers ties
Qwen3-VL's `lm_head` by the top-level field, whatever the text config says).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError, choices
from ..spec import ModelSpec
from .base import DecoderAdapter


@dataclass(frozen=True)
class TextDecoderOf(DecoderAdapter):
    texts: tuple[DecoderAdapter, ...] = ()  # the adapters of the text decoders this wrapper holds
    # text model_type built only inside the wrapper -> the built-in decoder that computes it (text tokens)
    text_as: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    wrapper_ties_embeddings: bool = False  # the wrapper's tie_word_embeddings decides (Qwen3-VL)
    text_fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))  # fixed in the target

    def text_adapter(self, text_model_type: Any, source: str) -> DecoderAdapter:
        text_model_type = self.text_as.get(text_model_type, text_model_type)
        found = [a for a in self.texts if text_model_type in a.model_types]
        if found or (text_model_type is None and len(self.texts) == 1):
            return (found or list(self.texts))[0]
        supported = sorted(t for a in self.texts for t in a.model_types)
        raise UnsupportedModelError(f"{source}: text_config model_type {text_model_type!r} is not supported inside "
                                    f"{self.model_types[0]}; supported: {choices(supported)}")

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        text = data.get("text_config")
        if not isinstance(text, Mapping):
            raise MalformedConfigError(f"{source}: model_type {data.get('model_type')!r} needs a text_config object")
        self.text_adapter(text.get("model_type"), source).check_given(text, f"{source} text_config")

    def to_spec(self, config: PretrainedConfig, name: str) -> ModelSpec:
        text_config = getattr(config, "text_config", None)
        if text_config is None:
            raise MalformedConfigError(f"{name}: model_type {config.model_type!r} needs a text_config")
        text_config = self.built_in_text_config(config, text_config)
        spec = self.text_adapter(text_config.model_type, name).to_spec(text_config, name)
        return dataclasses.replace(spec, architecture=f"{self.architecture(config)} (text decoder only)")

    def built_in_text_config(self, config: PretrainedConfig, text_config: PretrainedConfig) -> PretrainedConfig:
        """The text config as its `text_as` target's config (the same fields; M-RoPE's sections dropped:
        a text token's three positions are equal), tied as the wrapper says when it decides."""
        target = self.text_as.get(text_config.model_type)
        if target is None:
            return text_config
        from transformers.models.auto.configuration_auto import CONFIG_MAPPING

        data = {k: v for k, v in text_config.to_dict().items() if k not in ("model_type", "transformers_version")}
        for key in ("rope_parameters", "rope_scaling"):
            if isinstance(data.get(key), Mapping):
                data[key] = {k: v for k, v in data[key].items() if not str(k).startswith("mrope")}
        data.update(self.text_fields)
        if self.wrapper_ties_embeddings:
            data["tie_word_embeddings"] = bool(getattr(config, "tie_word_embeddings", False))
        return CONFIG_MAPPING[target](**data)
