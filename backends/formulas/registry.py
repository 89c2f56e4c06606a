"""The op -> cost-rule registry, and the op-call view that rules read.

Owns:
- `TensorInfo` / `OpCall`: an op call as rules see it (shapes as ints or sympy expressions,
  dtypes, contiguity), built from a graph node or from meta tensors;
- `CostKnobs`: the modelling choices that change what an op costs but not the graph (the MoE
  routing skew, the MLA kernel form): they reach rules through `OpCall.knobs`, so changing one
  re-costs a traced graph and never re-traces it;
- `register(*ops, kind=...)`: the decorator that files one rule under one or more op keys
  (registering a key twice raises);
- `FREE_OPS`: ops that cost nothing, each with the reason (views, shape arithmetic);
- `lookup(op)`: the rule for an op, or `UnknownOpError` — never a silent zero.

Op keys are what the graph holds: an `OpOverload` (aten or tensor_cast), a torch function
(`torch._C._nn.linear`, `torch.cat`), an `operator` function, or `"Tensor.<method>"` for
method calls. Rules never import device code.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from ...errors import UnknownOpError
from ...ops import schema
from ...sizes import numel
from ..counts import Counts
from ..kinds import KINDS  # re-exported: rules are filed under one of these

DTYPE_BYTES: dict[torch.dtype, Any] = {
    torch.float64: 8, torch.float32: 4, torch.float16: 2, torch.bfloat16: 2,
    torch.int64: 8, torch.int32: 4, torch.int16: 2, torch.int8: 1, torch.uint8: 1, torch.bool: 1,
    torch.float8_e4m3fn: 1, torch.float8_e5m2: 1, torch.float8_e4m3fnuz: 1, torch.float8_e5m2fnuz: 1,
    torch.float8_e8m0fnu: 1,  # MXFP8 / MXFP4 block scales (a power-of-two exponent)
    torch.complex64: 8,
}
if hasattr(torch, "float4_e2m1fn_x2"):
    DTYPE_BYTES[torch.float4_e2m1fn_x2] = 1  # two fp4 values per byte; numel counts pairs


@dataclass(frozen=True)
class TensorInfo:
    shape: tuple[Any, ...]
    dtype: torch.dtype
    contiguous: bool = True
    # Bytes per element when it differs from the dtype's (quantized weights stored as bf16 on meta).
    element_bytes: Any = None

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def numel(self) -> Any:
        return numel(self.shape)

    @property
    def itemsize(self) -> Any:
        if self.element_bytes is not None:
            return self.element_bytes
        try:
            return DTYPE_BYTES[self.dtype]
        except KeyError:
            raise UnknownOpError(f"no byte size known for dtype {self.dtype}") from None

    @property
    def nbytes(self) -> Any:
        return self.numel * self.itemsize


def tensor_infos(value: Any) -> Any:
    """`value` with every torch tensor (nested in lists/tuples) replaced by its `TensorInfo`."""
    if isinstance(value, torch.Tensor):
        return TensorInfo(shape=tuple(value.shape), dtype=value.dtype, contiguous=value.is_contiguous())
    if isinstance(value, (list, tuple)):
        return type(value)(tensor_infos(v) for v in value)
    if isinstance(value, dict):
        return {k: tensor_infos(v) for k, v in value.items()}
    return value


def _flatten(value: Any) -> list[TensorInfo]:
    if isinstance(value, TensorInfo):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return []


@dataclass(frozen=True)
class CostKnobs:
    """Cost-only modelling choices (not in the graph; not in the trace cache key)."""

    # Zipf exponent of MoE expert popularity (0: uniform routing); read by the MoE and EP exchange rules
    moe_skew: float = 0.0
    # how MLA attention is computed (auto: absorbed for decode-sized steps and sparse attention,
    # expanded otherwise | absorbed | expanded; tensor_cast/ops/mla.py); read by the `mla_attention` rule
    mla_form: str = "auto"


@dataclass(frozen=True)
class OpCall:
    """One call of an op: arguments (TensorInfo for tensors, literals otherwise) and outputs."""

    op: Any
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    outputs: tuple[TensorInfo, ...] = ()
    knobs: CostKnobs = field(default_factory=CostKnobs)

    def arg(self, index: int, name: str | None = None, default: Any = None) -> Any:
        """A torch function's / aten op's argument by position (custom ops: `get`, by name)."""
        if name is not None and name in self.kwargs:
            return self.kwargs[name]
        return self.args[index] if index < len(self.args) else default

    def get(self, name: str) -> Any:
        """Argument `name` of an `OpOverload` call, from the op's schema (its default when not passed)."""
        return schema.value(self.op, self.args, self.kwargs, name)

    @property
    def inputs(self) -> list[TensorInfo]:
        """Every tensor argument, lists flattened, in argument order."""
        return _flatten(list(self.args) + list(self.kwargs.values()))

    @property
    def out(self) -> TensorInfo:
        return self.outputs[0]

    @property
    def out_bytes(self) -> Any:
        return sum((o.nbytes for o in self.outputs), 0)

    @property
    def in_bytes(self) -> Any:
        return sum((t.nbytes for t in self.inputs), 0)


Rule = Callable[[OpCall], Counts]


@dataclass(frozen=True)
class RuleEntry:
    rule: Rule
    kind: str
    name: str


_RULES: dict[Any, RuleEntry] = {}
FREE_OPS: dict[Any, str] = {}


def op_name(op: Any) -> str:
    """Display name: 'aten.mm', 'tensor_cast.attention', 'linear', 'Tensor.view', 'add'."""
    if isinstance(op, str):
        return op
    if isinstance(op, torch._ops.OpOverload):
        ns = op.namespace
        base = op._schema.name.split("::")[-1]
        return f"{ns}.{base}" if op._overloadname == "default" else f"{ns}.{base}.{op._overloadname}"
    if isinstance(op, torch._ops.OpOverloadPacket):
        return str(op).replace("::", ".")
    name = getattr(op, "__name__", None) or repr(op)
    if getattr(op, "__module__", None) == "_operator" or op in vars(operator).values():
        return name
    return name


def register(*ops: Any, kind: str) -> Callable[[Rule], Rule]:
    """File `rule` under every op key in `ops`. A key registered twice raises."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r} not in {KINDS}")

    def decorator(rule: Rule) -> Rule:
        for op in ops:
            if op in _RULES or op in FREE_OPS:
                raise ValueError(f"cost rule for {op_name(op)} registered twice")
            _RULES[op] = RuleEntry(rule=rule, kind=kind, name=op_name(op))
        return rule

    return decorator


def register_free(reason: str, *ops: Any) -> None:
    """Declare ops that cost nothing, with the reason (shown in reports)."""
    for op in ops:
        if op in _RULES or op in FREE_OPS:
            raise ValueError(f"cost rule for {op_name(op)} registered twice")
        FREE_OPS[op] = reason


def lookup(op: Any) -> RuleEntry:
    try:
        return _RULES[op]
    except (KeyError, TypeError):
        raise UnknownOpError(
            f"no cost rule for op {op_name(op)}; add one in tensor_cast/backends/formulas/ "
            "(see CONTRIBUTING.md, 'add a formula')"
        ) from None


def is_free(op: Any) -> bool:
    try:
        return op in FREE_OPS
    except TypeError:
        return False


def registered_ops() -> Sequence[Any]:
    return list(_RULES)
