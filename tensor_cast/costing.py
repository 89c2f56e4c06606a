"""Cost every node of a rewritten graph: Counts from the formula registry, time from the backend.

Owns `cost_graph(...) -> CostedGraph`: a read-only walk over the final graph (it never mutates
it) that, per node, builds the `OpCall` view from the node's fake-tensor metadata (sizes as
expressions in B, S, C), looks up its rule (an unknown op is an error naming the node), times it
with the roofline backend, and attributes it to the representative layer and phase its
`NodeFacts` name (set at capture, kept by the passes; costing never re-derives them from module
paths). Free ops are tallied by name with their reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch import fx

from .backends.device import DeviceProfile
from .backends.formulas import OpCall, TensorInfo, is_free, lookup, op_name
from .backends.formulas.registry import FREE_OPS, CostKnobs
from .backends.roofline import ExecutionMode, op_time
from .costed import BOUNDARY_PHASE, CostedGraph, CostedNode  # noqa: F401  (BOUNDARY_PHASE: re-exported)
from .errors import TensorCastError, UnknownOpError
from .ops import schema
from .passes.graph_utils import call_target, example, module_path
from .passes.node_facts import facts

HOST_SCALAR_REASON = "host-side scalar/shape arithmetic (no tensor result)"
DEFAULT_KNOBS = CostKnobs()
NOOP_REASON = "no data movement for these arguments (view, same-dtype conversion, tuple unpacking)"


def tensor_info(value: torch.Tensor, to_expr: Callable[[Any], Any], element_bytes: Any = None) -> TensorInfo:
    try:
        contiguous = bool(value.is_contiguous())
    except Exception:  # symbolic strides that cannot be decided: assume the common case
        contiguous = True
    return TensorInfo(shape=tuple(to_expr(d) for d in value.shape), dtype=value.dtype, contiguous=contiguous,
                      element_bytes=element_bytes)


def _convert(value: Any, to_expr: Callable[[Any], Any]) -> Any:
    if isinstance(value, fx.Node):
        return _convert(example(value), to_expr) if "example_value" in value.meta else value
    if isinstance(value, torch.Tensor):
        return tensor_info(value, to_expr)
    if isinstance(value, torch.SymInt | torch.SymFloat | torch.SymBool):
        return to_expr(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_convert(v, to_expr) for v in value)
    if isinstance(value, slice):
        return slice(*(_convert(v, to_expr) for v in (value.start, value.stop, value.step)))
    return value


def _outputs(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _outputs(v)]
    return []


def make_call(node: fx.Node, to_expr: Callable[[Any], Any], knobs: CostKnobs = DEFAULT_KNOBS) -> OpCall:
    args = tuple(_convert(a, to_expr) for a in node.args)
    kwargs = {k: _convert(v, to_expr) for k, v in node.kwargs.items()}
    # inputs a pass stored narrower than their meta dtype, as this op reads them (an FP8 KV cache)
    for name, size in facts(node).input_bytes:
        index = schema.position(node.target, name)  # type: ignore[arg-type]
        source = node.kwargs[name] if name in node.kwargs else node.args[index]
        if not isinstance(source, fx.Node) or not isinstance(_convert(source, to_expr), TensorInfo):
            continue
        info = tensor_info(example(source), to_expr, size)
        if name in kwargs:
            kwargs[name] = info
        else:
            args = (*args[:index], info, *args[index + 1:])
    outputs = tuple(tensor_info(t, to_expr) for t in _outputs(example(node)))
    return OpCall(op=call_target(node), args=args, kwargs=kwargs, outputs=outputs, knobs=knobs)


def cost_graph(gm: fx.GraphModule, to_expr: Callable[[Any], Any], *, profile: DeviceProfile,
               mode: ExecutionMode, knobs: CostKnobs = DEFAULT_KNOBS) -> CostedGraph:
    """Cost every node of `gm` on `profile`; `knobs` are the cost-only modelling choices."""
    nodes: list[CostedNode] = []
    free: Counter[tuple[str, str]] = Counter()
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        path = module_path(node)
        node_facts = facts(node)
        key = call_target(node)
        name = op_name(key)
        if not _outputs(example(node)):
            free[(name, HOST_SCALAR_REASON)] += 1
            continue
        if is_free(key):
            free[(name, FREE_OPS[key])] += 1
            continue
        try:
            entry = lookup(key)
            call = make_call(node, to_expr, knobs)
            counts = entry.rule(call)
        except TensorCastError as exc:
            raise UnknownOpError(f"{exc} (node: {node.format_node()}, module: {path or 'model'})") from None
        except Exception as exc:
            raise RuntimeError(f"cost rule for {name} failed on node {node.format_node()}: {exc}") from exc
        if counts.launches == 0 and not counts.bytes and not counts.flops:
            free[(name, NOOP_REASON)] += 1
            continue
        first_out = _outputs(example(node))[0]
        nodes.append(CostedNode(
            name=node.name, op=name, kind=entry.kind, module=path or "model", rep_layer=node_facts.layer,
            phase=node_facts.phase,
            input_shapes=tuple(t.shape for t in call.inputs),
            output_shapes=tuple(o.shape for o in call.outputs),
            dtype=str(first_out.dtype).removeprefix("torch."),
            counts=counts, time=op_time(counts, entry.kind, profile, mode), call=call,
        ))
    return CostedGraph(nodes=nodes, free_ops=free, graph=gm)
