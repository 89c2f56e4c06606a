"""Resolve a model argument to a typed `ModelSpec`.

Owns the lookup order — a local directory with `config.json`, then the offline registry, then
(only when online) the HF hub — and the user-facing errors for each failure. Only configs are
ever read: never weights. Remote code runs only when the caller passed `trust_remote_code=True`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from transformers import PretrainedConfig

from ..errors import MalformedConfigError, UnknownModelError, UnsupportedModelError, choices
from . import registry
from .adapters import MODEL_TYPE_ALIASES, adapter_for, supported_model_types
from .config_checks import check_spec, check_values
from .locate import check_model_argument, unknown_model_message
from .spec import ModelSpec
from .translations import TRANSLATIONS, translate


def read_config_file(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise MalformedConfigError(f"cannot read {path}: {exc.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise MalformedConfigError(f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise MalformedConfigError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def config_from_dict(data: dict[str, Any], *, source: str, trust_remote_code: bool = False,
                     local_dir: Path | None = None) -> PretrainedConfig:
    """A transformers config from config.json contents, without executing remote code."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = data.get("model_type")
    if not model_type:
        raise MalformedConfigError(f"{source}: config.json has no 'model_type' field")
    if model_type in TRANSLATIONS:  # built as the architecture that computes the same model: no remote code
        data = translate(data, source, adapter_for(TRANSLATIONS[model_type].target).required_fields())
        model_type = data["model_type"]
    model_type = MODEL_TYPE_ALIASES.get(model_type, model_type)
    if model_type not in CONFIG_MAPPING:
        if "auto_map" in data and not trust_remote_code:
            raise UnsupportedModelError(
                f"{source}: model_type {model_type!r} is not built into transformers and its config names remote "
                "code (auto_map); pass --trust-remote-code / trust_remote_code=True to allow running it"
            )
        if trust_remote_code and local_dir is not None:
            check_values(data, source)
            return _remote_config(local_dir, source)
        raise UnsupportedModelError(
            f"{source}: model_type {model_type!r} is unknown to transformers; supported model types: "
            f"{choices(supported_model_types())}"
        )
    check_values(data, source)
    adapter = adapter_for(model_type)
    adapter.check_given(data, source)
    derived = {k: v for k, v in adapter.derived_fields(data).items() if k not in data}
    fields = {**{k: v for k, v in data.items() if k != "model_type"}, **derived}
    from huggingface_hub.errors import StrictDataclassError  # transformers' config validators raise these

    try:
        return CONFIG_MAPPING[model_type](**fields)
    except (TypeError, ValueError, KeyError, StrictDataclassError) as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = " ".join(lines[-2:]) if isinstance(exc, StrictDataclassError) else (lines[0] if lines else repr(exc))
        raise MalformedConfigError(f"{source}: invalid config for model_type {model_type!r}: {detail}") from None


def _remote_config(local_dir: Path, source: str) -> PretrainedConfig:
    """A config built by the directory's own code (the caller allowed it): its failures are the
    config's, reported in one line."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(local_dir), trust_remote_code=True)
    except Exception as exc:  # the remote code may raise anything
        first = str(exc).splitlines()[0] if str(exc) else ""
        raise MalformedConfigError(f"{source}: the config's own code (auto_map) failed: "
                                   f"{type(exc).__name__}: {first}") from None
    model_type = MODEL_TYPE_ALIASES.get(config.model_type, config.model_type)
    adapter_for(model_type).check_given(config.to_dict(), source)
    return config


def resolve_config(model: str, *, trust_remote_code: bool = False) -> tuple[PretrainedConfig, str, str]:
    """(HF config, display name, the model_type the config.json writes) for a model argument."""
    check_model_argument(model)
    path = Path(model).expanduser()
    if path.is_dir():
        cfg_path = path / "config.json"
        if not cfg_path.is_file():
            raise MalformedConfigError(f"{path} is a directory but has no config.json")
        data = read_config_file(cfg_path)
        return config_from_dict(data, source=str(cfg_path), trust_remote_code=trust_remote_code,
                                local_dir=path), path.name, str(data.get("model_type", ""))
    if path.suffix == ".json" and path.is_file():
        data = read_config_file(path)
        return config_from_dict(data, source=str(path)), path.stem, str(data.get("model_type", ""))
    entry = registry.lookup(model)
    if entry is not None:
        return (config_from_dict(dict(entry.config), source=f"registry:{entry.id}"), entry.id,
                str(entry.config.get("model_type", "")))
    config, written = _from_hub(model, trust_remote_code=trust_remote_code)
    return config, model, written


def _from_hub(model: str, *, trust_remote_code: bool) -> tuple[PretrainedConfig, str]:
    """(config, the model_type its config.json writes) from the hub."""
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        return config, config.model_type
    except ValueError as exc:  # transformers refuses remote code without trust_remote_code
        if "trust_remote_code" in str(exc):
            data = _hub_config_json(model)
            if data is not None and data.get("model_type") in TRANSLATIONS:
                return config_from_dict(data, source=f"hub:{model}"), str(data["model_type"])
            raise UnsupportedModelError(
                f"{model}: this config needs remote code; pass --trust-remote-code to allow running it"
            ) from None
        raise UnknownModelError(unknown_model_message(model, f"; hub lookup failed: {exc}")) from None
    except OSError as exc:
        raise UnknownModelError(
            unknown_model_message(model, f"; hub lookup failed: {str(exc).splitlines()[0]}")) from None


def _hub_config_json(model: str) -> dict[str, Any] | None:
    """The hub repository's config.json as a dict (read as data, no code), or None when it cannot be fetched."""
    from huggingface_hub import hf_hub_download

    try:
        return read_config_file(Path(hf_hub_download(model, "config.json")))
    except Exception:  # offline, gated, missing: the caller reports the remote-code refusal instead
        return None


def load_spec(model: str | PretrainedConfig | ModelSpec, *, trust_remote_code: bool = False) -> ModelSpec:
    """The typed spec of a model argument (id, directory, config object or spec)."""
    if isinstance(model, ModelSpec):
        return model
    if isinstance(model, PretrainedConfig):
        config, name, written = model, getattr(model, "_name_or_path", "") or model.model_type, model.model_type
        check_values(config.to_dict(), name)
    else:
        config, name, written = resolve_config(model, trust_remote_code=trust_remote_code)
    spec = dataclasses.replace(adapter_for(config.model_type).to_spec(config, name), written_model_type=written)
    check_spec(spec)
    if spec.mtp_layers and not spec.mtp_block:  # the MTP block's layers, from the full model's config
        spec = dataclasses.replace(spec, mtp_block=adapter_for(spec.model_type).mtp_block_specs(spec))
    return spec
