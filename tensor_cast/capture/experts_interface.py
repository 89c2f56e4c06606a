"""The experts function tensor_cast registers with transformers during capture.

transformers 5.x experts modules decorated with `@use_experts_implementation` (fused 3-D
`gate_up_proj (E, 2I, H)` / `down_proj (E, H, I)`, optional biases, transposed or interleaved
layouts) dispatch their forward through `ALL_EXPERTS_FUNCTIONS[config._experts_implementation]`
with (module, hidden_states (T, H), top_k_index (T, k), top_k_weights (T, k)). Ours emits one
`tensor_cast::routed_experts` op carrying the weights and the layout flags the decorator set on
the module, so the router stays visible in the graph and `replace_moe` can fold the whole block.

Experts that apply their own gate (`_apply_gate` overridden, gpt-oss's clamped SwiGLU) are named
through `CUSTOM_GATES`; an unknown custom gate or a post-expert norm is a clear error naming the
class, never a silently different activation.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UnsupportedModelError
from ..ops.moe import routed_experts

# experts class name -> the activation its `_apply_gate` computes (see ops/moe.py); Beam's is the standard
# SwiGLU evaluated in float32 (`silu(gate.float()) * up.float()`, cast back): the same activation
CUSTOM_GATES = {"GptOssExperts": "swiglu_oai", "DeepseekV4Experts": "swiglu_limit", "BeamExperts": "silu"}


def _activation(module: torch.nn.Module) -> str:
    from transformers.integrations.moe import _default_apply_gate

    name = type(module).__name__
    if module.has_gate and getattr(type(module), "_apply_gate", _default_apply_gate) is not _default_apply_gate:
        if name not in CUSTOM_GATES:
            raise UnsupportedModelError(
                f"{name} applies its own expert gate; known custom gates: {', '.join(CUSTOM_GATES)}")
        return CUSTOM_GATES[name]
    config = module.config
    act = next((getattr(config, name) for name in ("hidden_act", "hidden_activation", "mlp_hidden_act")
                if getattr(config, name, None)), "silu")
    return {"gelu_pytorch_tanh": "gelu_tanh", "swish": "silu"}.get(str(act), str(act))


def tensor_cast_experts(module: torch.nn.Module, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                        top_k_weights: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    name = type(module).__name__
    if getattr(module, "has_post_expert_norm", False):
        raise UnsupportedModelError(f"{name} normalizes each expert's output; tensor_cast::moe does not model it yet")
    if module.has_gate:
        gate = "concat" if module.is_concatenated else "interleaved"
        first, first_bias = module.gate_up_proj, getattr(module, "gate_up_proj_bias", None)
    else:
        gate, first, first_bias = "none", module.up_proj, getattr(module, "up_proj_bias", None)
    second_bias = getattr(module, "down_proj_bias", None)
    if not module.has_bias:
        first_bias = second_bias = None
    return routed_experts(hidden_states, top_k_index, top_k_weights, first, module.down_proj, first_bias,
                          second_bias, _activation(module), gate, bool(module.is_transposed))


def experts_function(rep: Any) -> Any:
    """The experts function to capture a representative model with: ours when it has MoE layers
    (after checking their modules against the family table), else None."""
    extra = tuple(spec for _, spec in getattr(rep, "extra_layers", ()))  # MTP blocks' layers
    if not any(kind.mlp.kind == "moe" for kind in (*rep.kinds, *extra)):
        return None
    from ..models.adapters import adapter_for
    from ..models.adapters.moe import MoEAdapter

    adapter = adapter_for(rep.spec.model_type)
    if isinstance(adapter, MoEAdapter):
        adapter.check_modules(rep.model, rep.layers_path, rep.kinds)
    return tensor_cast_experts


def check_moe_capture(rep: Any, gm: torch.fx.GraphModule) -> None:
    """Every MoE layer kind of the representative model traced its experts through our function.

    A MoE layer without a `tensor_cast::moe` / `routed_experts` node means its experts did not
    dispatch through transformers' experts registry: its cost would be wrong, so it is an error.
    """
    from ..passes.node_facts import facts

    ops = (torch.ops.tensor_cast.moe.default, torch.ops.tensor_cast.routed_experts.default)
    found: dict[int, int] = {}
    for node in gm.graph.nodes:
        layer = facts(node).layer if node.op == "call_function" and node.target in ops else None
        if layer is not None:
            found[layer] = found.get(layer, 0) + 1
    for index, kind in enumerate(rep.kinds):
        if kind.mlp.kind == "moe" and found.get(index, 0) != 1:
            raise UnsupportedModelError(
                f"model_type {rep.spec.model_type!r}: MoE layer {rep.layer_indices[index][0]} traced "
                f"{found.get(index, 0)} experts ops instead of 1 (its experts do not dispatch through "
                "transformers' experts registry)")
