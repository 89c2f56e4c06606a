"""Cost every node of a rewritten graph: Counts from the formula registry, time from the backend.

Owns `cost_graph(...) -> CostedGraph`: a read-only walk over the final graph (it never mutates
it) that, per node, builds the `OpCall` view from the node's fake-tensor metadata (sizes as
expressions in B, S, C), looks up its rule (an unknown op is an error naming the node), times it
with the roofline backend, and attributes it to a representative layer (or to the model-level
prologue/epilogue). Free ops are tallied by name with their reason.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import fx

from .backends.counts import Counts
from .backends.device import DeviceProfile
from .backends.formulas import OpCall, TensorInfo, is_free, lookup, op_name
from .backends.formulas.registry import FREE_OPS
from .backends.roofline import ExecutionMode, OpTime, op_time
from .errors import TensorCastError, UnknownOpError
from .passes.graph_utils import call_target, example, module_path

HOST_SCALAR_REASON = "host-side scalar/shape arithmetic (no tensor result)"
NOOP_REASON = "no data movement for these arguments (view, same-dtype conversion, tuple unpacking)"


@dataclass(frozen=True)
class CostedNode:
    name: str
    op: str
    kind: str
    module: str  # normalized module path in the representative model
    rep_layer: int | None  # index of the representative layer; None: model-level
    phase: str  # prologue | layer | epilogue
    input_shapes: tuple[tuple[Any, ...], ...]
    output_shapes: tuple[tuple[Any, ...], ...]
    dtype: str
    counts: Counts
    time: OpTime
    call: OpCall = field(repr=False, compare=False)


@dataclass
class CostedGraph:
    nodes: list[CostedNode]
    free_ops: Counter[tuple[str, str]]  # (op name, reason) -> count in the representative graph
    graph: fx.GraphModule | None  # None when rebuilt from the trace cache (tensor_cast/cache/)
    # live activation bytes at each op (memory.activation_candidates); set when `graph` is None
    activations: tuple[Any, ...] | None = None


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


def make_call(node: fx.Node, to_expr: Callable[[Any], Any]) -> OpCall:
    args = tuple(_convert(a, to_expr) for a in node.args)
    kwargs = {k: _convert(v, to_expr) for k, v in node.kwargs.items()}
    element_bytes = node.meta.get("tensor_cast_element_bytes")
    if element_bytes is not None:  # a pass recorded a storage format narrower than the meta dtype
        args = tuple(_with_element_bytes(a, node.args[i], to_expr) for i, a in enumerate(args))
    outputs = tuple(tensor_info(t, to_expr) for t in _outputs(example(node)))
    return OpCall(op=call_target(node), args=args, kwargs=kwargs, outputs=outputs)


def _with_element_bytes(info: Any, arg: Any, to_expr: Callable[[Any], Any]) -> Any:
    # a bool is the flag on an op that reads recorded sizes (its output may feed another such op:
    # the DeepSeek indexer's top-k feeds the MLA attention), not a size
    size = arg.meta.get("tensor_cast_element_bytes") if isinstance(arg, fx.Node) else None
    if size is not None and not isinstance(size, bool) and isinstance(info, TensorInfo):
        return tensor_info(example(arg), to_expr, size)
    return info


def _layer_of(path: str, layers_path: str) -> int | None:
    match = re.match(rf"^{re.escape(layers_path)}\.(\d+)(\.|$)", path)
    return int(match.group(1)) if match else None


def cost_graph(gm: fx.GraphModule, to_expr: Callable[[Any], Any], *, layers_path: str, profile: DeviceProfile,
               mode: ExecutionMode) -> CostedGraph:
    nodes: list[CostedNode] = []
    free: Counter[tuple[str, str]] = Counter()
    seen_layer = False
    layer_of_node: dict[fx.Node, int | None] = {}
    for node in gm.graph.nodes:
        if node.op in ("placeholder", "output", "get_attr"):
            continue
        path = module_path(node)
        rep_layer = _layer_of(path, layers_path)
        # With add+norm fusion each layer's trailing residual add is fused with the next layer's
        # input norm; the first layer's input norm stands alone, reads the embedding, runs once.
        if (rep_layer is not None and node.target is torch.ops.tensor_cast.rms_norm.default
                and isinstance(node.args[0], fx.Node) and layer_of_node.get(node.args[0]) is None):
            rep_layer = None
        layer_of_node[node] = rep_layer
        seen_layer = seen_layer or rep_layer is not None
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
            call = make_call(node, to_expr)
            counts = entry.rule(call)
        except TensorCastError as exc:
            raise UnknownOpError(f"{exc} (node: {node.format_node()}, module: {path or 'model'})") from None
        except Exception as exc:
            raise RuntimeError(f"cost rule for {name} failed on node {node.format_node()}: {exc}") from exc
        if counts.launches == 0 and not counts.bytes and not counts.flops:
            free[(name, NOOP_REASON)] += 1
            continue
        phase = "layer" if rep_layer is not None else ("epilogue" if seen_layer else "prologue")
        first_out = _outputs(example(node))[0]
        nodes.append(CostedNode(
            name=node.name, op=name, kind=entry.kind, module=path or "model", rep_layer=rep_layer, phase=phase,
            input_shapes=tuple(t.shape for t in call.inputs),
            output_shapes=tuple(o.shape for o in call.outputs),
            dtype=str(first_out.dtype).removeprefix("torch."),
            counts=counts, time=op_time(counts, call, entry.kind, profile, mode), call=call,
        ))
    return CostedGraph(nodes=nodes, free_ops=free, graph=gm)
