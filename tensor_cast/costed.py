"""What costing produces, without torch: `CostedNode`, `CostedGraph`, `ParamEntry`, `LazyCall`.

These are the types a `Report` reads and the trace cache (tensor_cast/cache/) stores. They live
apart from `costing.py` (which walks fx graphs) and `memory.py` (which walks torch modules) so that
a report rebuilt from a cached trace imports neither torch nor transformers: a warm
`tensor-cast analyze` answers in about a second.

`LazyCall`: a node's `OpCall` (its torch op and argument metadata, torch dtypes included) as read
from the cache, kept pickled until something asks for it (`CostedNode.op_call()`, or any attribute
of the call). Unpickling it imports torch and registers tensor_cast's custom ops; a report needs
it only for the EP overlap model of MoE layers (report/overlap.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import fx

    from .backends.counts import Counts
    from .backends.formulas.registry import OpCall
    from .backends.roofline import OpTime

BOUNDARY_PHASE = "pp_boundary"  # the phase of a pipeline stage's transfer (added by deployment/pipeline.py)


class LazyCall:
    """An `OpCall` kept as the trace cache's bytes until first use (see the module docstring)."""

    __slots__ = ("_call", "_data")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._call: Any = None

    def resolve(self) -> OpCall:
        if self._call is None:
            from .cache.record import loads_call  # imports torch and the custom ops

            self._call = loads_call(self._data)
        return self._call  # type: ignore[no-any-return]

    def __getattr__(self, name: str) -> Any:  # only for names not in __slots__
        if name.startswith("__"):  # protocol probes (copy, pickle) must not unpickle the call
            raise AttributeError(name)
        return getattr(self.resolve(), name)

    def __reduce__(self) -> tuple[Any, ...]:  # pickles again as the same bytes, unresolved
        return LazyCall, (self._data,)


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
    call: OpCall | LazyCall = field(repr=False, compare=False)  # a LazyCall when read from the trace cache

    def op_call(self) -> OpCall:
        """The node's `OpCall` (unpickled on first use when the node came from the trace cache)."""
        return self.call.resolve() if isinstance(self.call, LazyCall) else self.call


@dataclass
class CostedGraph:
    nodes: list[CostedNode]
    free_ops: Counter[tuple[str, str]]  # (op name, reason) -> count in the representative graph
    graph: fx.GraphModule | None  # None when rebuilt from the trace cache (tensor_cast/cache/)
    # live activation bytes at each op (memory.activation_candidates); set when `graph` is None
    activations: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class ParamEntry:
    name: str
    numel: int
    dtype: str  # torch dtype name without the "torch." prefix ("bfloat16")
    rep_layer: int | None
    multiplicity: int  # real layers this parameter stands for (1 for model-level)
    active_fraction: float  # fraction used per token (routed experts: top_k / E)
    bytes_per_element: float
    share: float = 1.0  # fraction of the tensor this rank stores (EP: 1/ep of the routed experts)
    input_embedding: bool = False  # the token embedding table (a row lookup, not multiplied)

    @property
    def total(self) -> int:
        return self.numel * self.multiplicity

    @property
    def rank_bytes(self) -> float:
        """Bytes one representative copy takes on this rank."""
        return self.numel * self.bytes_per_element * self.share

    @property
    def nbytes(self) -> float:
        return self.multiplicity * self.rank_bytes
