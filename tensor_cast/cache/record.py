"""`TracedCosts`: one trace's device-independent results, and how they are pickled.

A traced fx graph holds fake tensors and cannot be pickled; what the report needs from it can:
every costed node's `Counts` and `OpCall` (sizes as sympy expressions in B, S, C), its layer,
phase, module and dtype, the free-op tally, the activation-liveness candidates (the expressions
the activation peak is the max of) and the parameter tables. Time is the only device-dependent
part of a costed node: `costed(profile, mode)` re-times every node with the roofline backend,
so one record serves every device (and a hit gives the report an uncached run gives).

Pickling: `OpOverload`s (graph targets) are pickled by their qualified name and resolved again
through `torch.ops`; `MappingProxyType`s (`Counts.flops`) as the dict they wrap. Loading rebuilds
sympy expressions without re-evaluating them (they were stored canonical).
"""

from __future__ import annotations

import io
import pickle
from collections import Counter
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

import torch

from ..backends.device import DeviceProfile
from ..backends.roofline import ExecutionMode, op_time
from ..costing import CostedGraph, CostedNode
from ..memory import ParamEntry

# Bump when the record's fields or meaning change: older entries are then stale.
RECORD_FORMAT = 1


def _resolve_op(namespace: str, name: str, overload: str) -> Any:
    return getattr(getattr(getattr(torch.ops, namespace), name), overload)


def _mapping_proxy(data: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(data)


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, torch._ops.OpOverload):
            namespace, name = obj._schema.name.split("::")
            return _resolve_op, (namespace, name, obj._overloadname)
        if isinstance(obj, MappingProxyType):
            return _mapping_proxy, (dict(obj),)
        return NotImplemented


def dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    import sympy

    import tensor_cast.ops  # noqa: F401  (the custom ops the records name must be registered)

    # The stored expressions were evaluated (canonical) before pickling; rebuilding them without
    # re-evaluation gives the same trees ~30x faster (Max / Piecewise re-simplify otherwise).
    with sympy.evaluate(False):
        return pickle.loads(data)


@dataclass(frozen=True)
class TracedCosts:
    """Everything a `Report` needs from one trace, for any device and shape point."""

    key: str  # the cache key it was stored under (checked on load)
    nodes: tuple[CostedNode, ...]
    free_ops: tuple[tuple[tuple[str, str], int], ...]
    activations: tuple[Any, ...]  # live activation bytes at each op (memory.activation_candidates)
    params: tuple[ParamEntry, ...]  # one rank's (sharded, stored bytes)
    model_params: tuple[ParamEntry, ...] | None  # the whole model's, when `params` is one rank's
    layer_indices: tuple[tuple[int, ...], ...]
    layers_path: str
    kind_names: tuple[str, ...]
    extra_kind_names: tuple[tuple[str, str], ...] = ()  # layers outside the stack (MTP): (module prefix, kind)
    seconds: tuple[tuple[str, float], ...] = ()  # build / capture / passes time of the trace
    format: int = RECORD_FORMAT

    def costed(self, profile: DeviceProfile, mode: ExecutionMode) -> CostedGraph:
        """The costed graph on `profile`: the stored counts, re-timed for this device."""
        nodes = [replace(n, time=op_time(n.counts, n.kind, profile, mode)) for n in self.nodes]
        return CostedGraph(nodes=nodes, free_ops=Counter(dict(self.free_ops)), graph=None,
                           activations=self.activations)
