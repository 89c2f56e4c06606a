"""Adapters for multimodal configs whose language model is analyzed on its own.

`TextDecoderOf` owns one rule: a config with a `text_config` (Gemma 3 4B/12B/27B are
`Gemma3ForConditionalGeneration`) is analyzed as its text decoder — the serving cost of
generating tokens — with the vision tower left out (the report's notes say so). The spec it
returns carries the text model_type, so building and capture go through the text adapter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError
from ..spec import ModelSpec
from .base import DecoderAdapter


@dataclass(frozen=True)
class TextDecoderOf(DecoderAdapter):
    text: DecoderAdapter | None = None  # the adapter of the text decoder's model_type

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        text = data.get("text_config")
        if not isinstance(text, Mapping) or self.text is None:
            raise MalformedConfigError(f"{source}: model_type {data.get('model_type')!r} needs a text_config object")
        self.text.check_given(text, f"{source} text_config")

    def to_spec(self, config: PretrainedConfig, name: str) -> ModelSpec:
        text_config = getattr(config, "text_config", None)
        if text_config is None or self.text is None:
            raise MalformedConfigError(f"{name}: model_type {config.model_type!r} needs a text_config")
        spec = self.text.to_spec(text_config, name)
        return dataclasses.replace(spec, architecture=f"{self.architecture(config)} (text decoder only)")
