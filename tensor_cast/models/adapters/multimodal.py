"""Adapters for multimodal configs whose language model is analyzed on its own.

`TextDecoderOf` owns one rule: a config with a `text_config` (Gemma 3 4B/12B/27B are
`Gemma3ForConditionalGeneration`) is analyzed as its text decoder — the serving cost of
generating tokens — with the vision tower left out (the report's notes say so). The spec it
returns carries the text model_type, so building and capture go through the text adapter: the one
of `texts` whose model types hold the text config's own (Mistral 3 holds a Mistral or a Ministral 3
decoder, by checkpoint); a text config that does not say its model_type takes a single `texts` entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError, choices
from ..spec import ModelSpec
from .base import DecoderAdapter


@dataclass(frozen=True)
class TextDecoderOf(DecoderAdapter):
    texts: tuple[DecoderAdapter, ...] = ()  # the adapters of the text decoders this wrapper holds

    def text_adapter(self, text_model_type: Any, source: str) -> DecoderAdapter:
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
        spec = self.text_adapter(text_config.model_type, name).to_spec(text_config, name)
        return dataclasses.replace(spec, architecture=f"{self.architecture(config)} (text decoder only)")
