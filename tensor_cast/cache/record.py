"""`TracedCosts`: one trace's device-independent results, and how they are pickled.

A traced fx graph holds fake tensors and cannot be pickled; what the report needs from it can:
every costed node's `Counts` and `OpCall` (sizes as sympy expressions in B, S, C), its layer,
phase, module and dtype, the free-op tally, the activation-liveness candidates (the expressions
the activation peak is the max of) and the parameter tables. Time is the only device-dependent
part of a costed node: `costed(profile, mode)` re-times every node with the roofline backend,
so one record serves every device (and a hit gives the report an uncached run gives).

Pickling: `OpOverload`s (graph targets) are pickled by their qualified name and resolved again
through `torch.ops`; `MappingProxyType`s (`Counts.flops`) as the dict they wrap. Each node's
`OpCall` (torch ops, torch dtypes) is pickled on its own, inside the record, and read back as a
`LazyCall` (tensor_cast/costed.py) that unpickles it on first use: loading a record and
re-timing it imports sympy but neither torch nor transformers. Loading rebuilds sympy expressions
without re-evaluating them (they were stored canonical).
"""

from __future__ import annotations

import io
import pickle
import sys
from collections import Counter
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from ..backends.device import DeviceProfile
from ..backends.roofline import ExecutionMode, op_time
from ..costed import CostedGraph, CostedNode, LazyCall, ParamEntry

# Bump when the record's fields or meaning change: older entries are then stale.
RECORD_FORMAT = 2  # 2: OpCalls pickled apart (LazyCall), ParamEntry.dtype a name


def _resolve_op(namespace: str, name: str, overload: str) -> Any:
    import torch

    return getattr(getattr(getattr(torch.ops, namespace), name), overload)


def _mapping_proxy(data: dict[str, Any]) -> MappingProxyType[str, Any]:
    return MappingProxyType(data)


class _Pickler(pickle.Pickler):
    """`lazy_calls`: pickle each `OpCall` apart, to be read back as a `LazyCall`."""

    def __init__(self, file: io.BytesIO, *, lazy_calls: bool) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.lazy_calls = lazy_calls

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, MappingProxyType):
            return _mapping_proxy, (dict(obj),)
        torch = sys.modules.get("torch")  # without torch loaded, nothing stored holds a torch object
        if torch is None:
            return NotImplemented
        formulas = sys.modules.get("tensor_cast.backends.formulas.registry")  # likewise for OpCalls
        if self.lazy_calls and formulas is not None and isinstance(obj, formulas.OpCall):
            return LazyCall, (_dumps(obj, lazy_calls=False),)
        if isinstance(obj, torch._ops.OpOverload):
            namespace, name = obj._schema.name.split("::")
            return _resolve_op, (namespace, name, obj._overloadname)
        return NotImplemented


def _dumps(value: Any, *, lazy_calls: bool) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, lazy_calls=lazy_calls).dump(value)
    return buffer.getvalue()


def dumps(value: Any) -> bytes:
    return _dumps(value, lazy_calls=True)


def loads_call(data: bytes) -> Any:
    """One `OpCall` stored apart (a `LazyCall`'s bytes): imports torch and the custom ops it names."""
    import tensor_cast.ops  # noqa: F401  (the custom ops the call names must be registered)

    return loads(data)


def loads(data: bytes) -> Any:
    """Unpickle a record: torch-free, its calls stay `LazyCall`s."""
    import sympy

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
