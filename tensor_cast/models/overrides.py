"""User overrides of a spec: `num_hidden_layers` and `per_layer_config`.

Owns the translation of `{layer: {field: value}}` into new `LayerSpec`s (so the traced graph and
the cost change for exactly those layers) and the validation of indices and field names.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import InvalidArgumentError, choices
from .spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec


def _attention(layer: LayerSpec, **changes: Any) -> LayerSpec:
    if layer.attention.kind == "none":
        raise InvalidArgumentError("cannot change the attention of a layer whose attention is skipped")
    return dataclasses.replace(layer, attention=dataclasses.replace(layer.attention, **changes))


def _mlp(layer: LayerSpec, **changes: Any) -> LayerSpec:
    return dataclasses.replace(layer, mlp=dataclasses.replace(layer.mlp, **changes))


def _moe(layer: LayerSpec, name: str, **changes: Any) -> LayerSpec:
    if layer.mlp.kind != "moe" or layer.mlp.moe is None:
        raise InvalidArgumentError(f"{name} applies to MoE layers only; this layer is {layer.mlp.kind}")
    moe = dataclasses.replace(layer.mlp.moe, **changes)
    if moe.top_k > moe.num_experts:
        raise InvalidArgumentError(
            f"per_layer_config: num_experts_per_tok={moe.top_k} exceeds num_experts={moe.num_experts} "
            f"(valid: 1..{moe.num_experts})")
    return _mlp(layer, moe=moe)


def _dense_width(layer: LayerSpec, value: Any) -> LayerSpec:
    if layer.mlp.kind != "dense":
        raise InvalidArgumentError(f"intermediate_size applies to dense MLP layers; this layer is {layer.mlp.kind}")
    return _mlp(layer, intermediate_size=_positive("intermediate_size", value))


def _window(layer: LayerSpec, value: Any) -> LayerSpec:
    if value in (None, 0):
        return _attention(layer, kind="full", window=None)
    return _attention(layer, kind="sliding", window=_positive("sliding_window", value))


def _skip_attention(layer: LayerSpec, value: Any) -> LayerSpec:
    return dataclasses.replace(layer, attention=AttentionSpec(kind="none")) if _bool("skip_attention", value) else layer


def _skip_mlp(layer: LayerSpec, value: Any) -> LayerSpec:
    return dataclasses.replace(layer, mlp=MLPSpec(kind="none")) if _bool("skip_mlp", value) else layer


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidArgumentError(f"per_layer_config: {name} must be a positive integer, got {value!r}")
    return value


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentError(f"per_layer_config: {name} must be true or false, got {value!r}")
    return value


FIELDS: dict[str, Callable[[LayerSpec, Any], LayerSpec]] = {
    "intermediate_size": _dense_width,
    "num_attention_heads": lambda layer, v: _attention(layer, num_heads=_positive("num_attention_heads", v)),
    "num_key_value_heads": lambda layer, v: _attention(layer, num_kv_heads=_positive("num_key_value_heads", v)),
    "head_dim": lambda layer, v: _attention(layer, head_dim=_positive("head_dim", v)),
    "sliding_window": _window,
    "skip_attention": _skip_attention,
    "skip_mlp": _skip_mlp,
    "num_experts": lambda layer, v: _moe(layer, "num_experts", num_experts=_positive("num_experts", v)),
    "num_experts_per_tok": lambda layer, v: _moe(layer, "num_experts_per_tok",
                                                 top_k=_positive("num_experts_per_tok", v)),
    "moe_intermediate_size": lambda layer, v: _moe(layer, "moe_intermediate_size",
                                                   expert_intermediate_size=_positive("moe_intermediate_size", v)),
}


def apply_overrides(spec: ModelSpec, *, num_hidden_layers: int | None = None,
                    per_layer_config: Mapping[Any, Mapping[str, Any]] | None = None) -> ModelSpec:
    layers = list(spec.layers)
    if num_hidden_layers is not None:
        if isinstance(num_hidden_layers, bool) or not isinstance(num_hidden_layers, int) or not (
                1 <= num_hidden_layers <= len(layers)):
            raise InvalidArgumentError(
                f"num_hidden_layers must be an integer in 1..{len(layers)} for {spec.name}, got {num_hidden_layers!r}")
        layers = layers[:num_hidden_layers]
    for raw_index, changes in (per_layer_config or {}).items():
        try:
            index = int(raw_index)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"per_layer_config keys must be layer indices, got {raw_index!r}") from None
        if not 0 <= index < len(layers):
            raise InvalidArgumentError(
                f"per_layer_config names layer {index} but {spec.name} has {len(layers)} layers (valid: 0..{len(layers) - 1})")
        if not isinstance(changes, Mapping):
            raise InvalidArgumentError(f"per_layer_config[{index}] must be a mapping of field -> value")
        for name, value in changes.items():
            if name not in FIELDS:
                raise InvalidArgumentError(
                    f"per_layer_config[{index}]: unknown field {name!r}; accepted: {choices(FIELDS)}")
            layers[index] = FIELDS[name](layers[index], value)
    if num_hidden_layers is None and not per_layer_config:
        return spec
    return dataclasses.replace(spec, layers=tuple(layers))
