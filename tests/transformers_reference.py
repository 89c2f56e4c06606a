"""Shared by the family tests that check tensor_cast against transformers' own modules: a config written
as the config.json a checkpoint would ship, and the parameters transformers' own model holds (built on
the meta device: nothing allocated)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PretrainedConfig


def write_config(config: PretrainedConfig, folder: Path) -> dict[str, Any]:
    """`config` as `folder/config.json` (with its causal-LM architecture); returns the written dict."""
    data = dict(config.to_dict(), architectures=[AutoModelForCausalLM._model_mapping[type(config)].__name__])
    (folder / "config.json").write_text(json.dumps(data))
    return data


def transformers_parameters(config: PretrainedConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in AutoModelForCausalLM.from_config(config).parameters())
