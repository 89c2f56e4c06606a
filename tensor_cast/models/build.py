"""Build the representative model: one decoder layer per distinct layer kind, on `meta`.

Owns `build_representative(spec)`: the transformers model for a stack holding each distinct
`LayerSpec` once (in first-appearance order), with the embedding, final norm and lm_head of the
real model. Costs are computed on it and multiplied by each kind's layer count, so analysis time
does not grow with depth. Nothing is allocated: every parameter is on the meta device.

A layer whose spec differs from what the stack config gives it (a per-layer intermediate size,
window or head count) is rebuilt from the adapter's per-layer config; a layer with a skipped
attention or MLP sub-block is wrapped by `SkippedSubBlocks`. Shared experts whose width the
config cannot express (families that size them as count x expert width, under expert
parallelism with tp > 1: whole experts, shared experts split over tp) are rebuilt per instance at
the spec's width (`fit_shared_experts`). Modules that cannot be captured as
transformers writes them are swapped per instance (`module_swaps.py`). With `mtp=N` the model
gets N multi-token-prediction draft passes (`mtp.py`), their decoder layers built in the same
stack and moved out of it.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..errors import UnsupportedModelError
from .adapters import adapter_for
from .module_swaps import apply_module_swaps
from .mtp import attach_mtp, check_mtp, mtp_block_specs
from .spec import ATTENTION_SPEC_ATTRIBUTE, LayerSpec, ModelSpec
from .torch_dtypes import DTYPES


@dataclass(frozen=True)
class RepresentativeModel:
    model: nn.Module
    spec: ModelSpec
    kinds: tuple[LayerSpec, ...]  # rep layer i has spec kinds[i]
    layer_indices: tuple[tuple[int, ...], ...]  # real layer indices of each rep layer
    layers_path: str  # module path of the decoder ModuleList, e.g. "model.layers"
    # layers outside the stack (MTP blocks' layers): (module path prefix, spec), e.g. ("mtp.0.layers.0", ...)
    extra_layers: tuple[tuple[str, LayerSpec], ...] = ()

    def layer_modules(self) -> tuple[nn.Module, ...]:
        """The representative decoder layers, in stack order (the modules themselves)."""
        stack = self.model.get_submodule(self.layers_path)
        assert isinstance(stack, nn.ModuleList), f"{self.layers_path} is not a ModuleList"
        return tuple(stack)

    def extra_layer_modules(self) -> tuple[nn.Module, ...]:
        """The decoder layers outside the stack (MTP blocks), in `extra_layers` order."""
        return tuple(self.model.get_submodule(path) for path, _ in self.extra_layers)


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


class SkippedSubBlocks(nn.Module):
    """A pre-norm decoder layer with its attention and/or MLP sub-block removed.

    Keeps the kept sub-modules under their original names, so module paths (and costs) of the
    remaining blocks are unchanged.
    """

    PARTS = ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")
    COPIED_ATTRIBUTES = ("attention_type", "layer_type", "is_sliding", "layer_idx")

    def __init__(self, layer: nn.Module, *, skip_attention: bool, skip_mlp: bool) -> None:
        super().__init__()
        missing = [p for p in self.PARTS if not hasattr(layer, p)]
        if missing:
            raise UnsupportedModelError(
                f"{type(layer).__name__} lacks {missing}: skip_attention/skip_mlp need the standard "
                f"pre-norm layout ({', '.join(self.PARTS)})")
        self.has_attention, self.has_mlp = not skip_attention, not skip_mlp
        if self.has_attention:
            self.input_layernorm, self.self_attn = layer.input_layernorm, layer.self_attn
        if self.has_mlp:
            self.post_attention_layernorm, self.mlp = layer.post_attention_layernorm, layer.mlp
        for attr in self.COPIED_ATTRIBUTES:
            if hasattr(layer, attr):
                setattr(self, attr, getattr(layer, attr))

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        if self.has_attention:
            assert isinstance(self.self_attn, nn.Module) and isinstance(self.input_layernorm, nn.Module)
            attn_out = self.self_attn(hidden_states=self.input_layernorm(hidden_states), **kwargs)
            hidden_states = hidden_states + (attn_out[0] if isinstance(attn_out, tuple) else attn_out)
        if self.has_mlp:
            assert isinstance(self.mlp, nn.Module) and isinstance(self.post_attention_layernorm, nn.Module)
            mlp_out = self.mlp(self.post_attention_layernorm(hidden_states))
            hidden_states = hidden_states + (mlp_out[0] if isinstance(mlp_out, tuple) else mlp_out)
        return hidden_states




def attach_attention_spec(layer: nn.Module, layer_spec: LayerSpec) -> None:
    """Record the layer's AttentionSpec on its modules (per instance, on our meta model).

    The spec is authoritative for what the attention op models (e.g. a per-layer sliding window
    a family's HF code would not pass to the attention function); the capture reads it from the
    module that calls the attention interface.
    """
    for module in layer.modules():
        object.__setattr__(module, ATTENTION_SPEC_ATTRIBUTE, layer_spec.attention)


def _config_dict(config: Any) -> dict[str, Any]:
    data = config.to_dict()
    data.pop("num_hidden_layers", None)
    return data


SHARED_EXPERT_MODULES = ("shared_experts", "shared_expert", "shared_mlp")  # under the layer's MoE block (Hunyuan: shared_mlp)


def fit_shared_experts(layer: nn.Module, layer_spec: LayerSpec, config: Any) -> None:
    """Rebuild the layer's shared-experts MLP at the spec's width when the built one differs.

    DeepSeek, GLM-4.5 and ERNIE-4.5 build `XxxMLP(config, intermediate_size=moe_intermediate_size *
    n_shared_experts)`; a TP-sharded shared width beside whole (EP) experts is no such product. The
    replacement is the same class at `intermediate_size=width` (DeepSeek-V4's `DeepseekV4MLP(config)`
    reads the width from the config: built from a copy whose `intermediate_size` is the width): same
    module path and parameter names, narrower shapes (one instance; nothing in transformers changes)."""
    moe = layer_spec.mlp.moe if layer_spec.mlp.kind == "moe" else None
    if moe is None or not moe.shared_intermediate_size:
        return
    for block in layer.children():
        for name in SHARED_EXPERT_MODULES:
            shared = getattr(block, name, None)
            down = getattr(shared, "down_proj", None)
            if (isinstance(shared, nn.Module) and isinstance(down, nn.Linear)
                    and down.in_features != moe.shared_intermediate_size):
                setattr(block, name, _shared_mlp(type(shared), config, moe.shared_intermediate_size))


def _shared_mlp(cls: type, config: Any, width: int) -> nn.Module:
    if "intermediate_size" in inspect.signature(cls).parameters:
        return cls(config, intermediate_size=width)
    narrow = copy.deepcopy(config)
    narrow.intermediate_size = width
    return cls(narrow)


def store_in_checkpoint_dtype(model: nn.Module, dtype: torch.dtype, fp32_suffixes: tuple[str, ...]) -> None:
    """Checkpoint tensors (parameters and persistent buffers) in the dtype the checkpoint stores
    them in: float32 for the family's `fp32_parameters`, the model dtype for every other one a
    transformers release happens to create in float32 (DeepSeek-style routers since 5.24). The
    dtype a checkpoint fixes must not depend on the transformers release."""
    for module_name, module in model.named_modules():
        tensors = [*module._parameters.items(),
                   *((k, v) for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set)]
        for leaf, tensor in tensors:
            if tensor is None or not tensor.is_floating_point():
                continue
            name = f"{module_name}.{leaf}" if module_name else leaf
            target = torch.float32 if name.endswith(fp32_suffixes) else dtype
            if tensor.dtype != target and (tensor.dtype == torch.float32 or target == torch.float32):
                tensor.data = tensor.data.to(target)


def _rebuilt_layer(layer_class: type, layer_config: Any, index: int, stack_config: Any) -> Any:
    """A decoder layer rebuilt from its own config; a class that takes its mixer type as an argument
    (Bamba's `layer_type`, which its model reads from the stack's `layer_types`) is given the same one."""
    if "layer_type" in inspect.signature(layer_class).parameters:
        return layer_class(layer_config, index, layer_type=stack_config.layer_types[index])
    return layer_class(layer_config, index)


def build_representative(spec: ModelSpec, *, mtp: int = 0) -> RepresentativeModel:
    from transformers import AutoModelForCausalLM

    check_mtp(spec, mtp)
    adapter = adapter_for(spec.model_type)
    kinds = spec.layer_kinds()
    layers = tuple(kind for kind, _ in kinds)
    mtp_blocks = min(mtp, spec.mtp_layers)
    block = mtp_block_specs(spec) if mtp_blocks else ()
    built = layers + block * mtp_blocks  # MTP blocks' layers: built in the stack, then moved out
    dtype = DTYPES.get(spec.dtype, torch.bfloat16)
    config = adapter.config_for_layers(spec, built)
    with torch.device("meta"), default_dtype(dtype):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
        stack = model.get_submodule(adapter.layers_path)
        for index, layer_spec in enumerate(built):
            layer_config = adapter.config_for_layer(spec, layer_spec, config)
            if _config_dict(layer_config) != _config_dict(config):
                stack[index] = _rebuilt_layer(type(stack[index]), layer_config, index, config)
            fit_shared_experts(stack[index], layer_spec, layer_config)
            skip_attention, skip_mlp = layer_spec.attention.kind == "none", layer_spec.mlp.kind == "none"
            if (skip_attention or skip_mlp) and not adapter.single_mixer_blocks:
                if not adapter.supports_layer_skips:
                    raise UnsupportedModelError(f"model_type {spec.model_type!r} does not support skipped sub-blocks")
                stack[index] = SkippedSubBlocks(stack[index], skip_attention=skip_attention, skip_mlp=skip_mlp)
        for index, layer_spec in enumerate(built):
            attach_attention_spec(stack[index], layer_spec)
        if mtp:
            moved = [stack[index] for index in range(len(layers), len(built))]
            for index in reversed(range(len(layers), len(built))):
                del stack[index]
            blocks = [moved[k * len(block):(k + 1) * len(block)] for k in range(mtp_blocks)]
            model = attach_mtp(model, blocks, mtp)
    apply_module_swaps(model, decode_query_len=1 + mtp)
    store_in_checkpoint_dtype(model, dtype, adapter.fp32_parameters)
    model.eval()
    model.requires_grad_(False)
    return RepresentativeModel(
        model=model, spec=spec, kinds=layers,
        layer_indices=tuple(tuple(indices) for _, indices in kinds),
        layers_path=adapter.layers_path,
        extra_layers=tuple((f"mtp.{k}.layers.{i}", layer) for k in range(mtp_blocks) for i, layer in enumerate(block)),
    )
