"""`Report`: the result of an analysis, symbolic or evaluated at one shape point.

Owns the report data model: per-op rows (`OpRow`, one per op per real layer, in execution
order), totals (time, FLOPs, bytes, tokens/s), memory (`Memory`), parameter counts, free ops,
and the symbolic machinery: a report built from one trace holds sympy expressions in B, S, C;
`evaluate(batch_size=, query_len=, context_len=)` gives the concrete report at a point and
`sweep(...)` evaluates the totals over arrays of points with one lambdified function (a
1,000-point sweep costs about one evaluation).

Rendering lives beside it: `table.py` (tabulate), `trace.py` (Chrome/Perfetto), `to_json`.

The report is data. The views over it are functions that take a report and live apart:
`deployment/fit.py` (`fit(report)`), `deployment/pipeline.py` (`stages(report)`,
`summary(report)`) and `report/overlap.py`; the `fit` / `pipeline` properties only call them.
Imports run one way (report -> those views; they import `Report` for type checking only), so
there is no import cycle — `tests/test_node_contract.py` checks it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import sympy

from ..costed import BOUNDARY_PHASE, CostedGraph, CostedNode, ParamEntry
from ..errors import InvalidArgumentError
from ..sizes import SYMBOL_FOR_ARG, B, C, S, pretty

POINT_ARGS = ("batch_size", "query_len", "context_len")


@dataclass(frozen=True)
class Memory:
    weights_bytes: Any
    kv_cache_bytes: Any
    activation_peak_bytes: Any

    @property
    def total_bytes(self) -> Any:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_peak_bytes


@dataclass(frozen=True)
class OpRow:
    name: str
    op: str
    kind: str
    layer: int | None
    phase: str  # prologue | layer | epilogue
    module: str
    shapes: str
    dtype: str
    flops: Any
    bytes: Any
    time_s: Any
    compute_s: Any
    memory_s: Any
    comm_s: Any
    overhead_s: Any
    bound: str
    launches: int
    start_s: Any = 0.0
    fallbacks: tuple[str, ...] = ()
    state_bytes: Any = 0  # KV cache / recurrent state this op holds after the step
    latency_s: Any = 0  # kernel latency + non-overlapped compute/memory: time_s = max(...) + latency_s + overhead_s


@dataclass(frozen=True)
class FreeOp:
    op: str
    reason: str
    count: int  # in the representative graph


@dataclass(frozen=True)
class ReportContext:
    """Everything a report needs besides the costed graph (all symbolic-independent)."""

    model: str
    device: str
    architecture: str
    layer_indices: tuple[tuple[int, ...], ...]
    layers_path: str
    num_layers: int
    params: tuple[ParamEntry, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    # ---- deployment (tensor_cast/deployment/) ----
    deployment: Any = None  # ResolvedDeployment; None: one GPU, unquantized
    model_params: tuple[ParamEntry, ...] | None = None  # the whole model's, when `params` is one rank's
    capacity_bytes: float = 0.0  # device memory
    tied_embeddings: bool = False
    max_position_embeddings: int = 0
    kind_names: tuple[str, ...] = ()  # attention kind of each representative layer
    # (module prefix, attention kind) of decoder layers outside the stack (MTP blocks)
    extra_kind_names: tuple[tuple[str, str], ...] = ()
    speculative: Any = None  # speculative.SpeculativeDecoding when MTP drafts run (mtp > 0)
    profile: Any = None  # the DeviceProfile the ops were timed on (per-part timings: report/overlap.py)
    warnings: tuple[str, ...] = ()  # options given that do not apply, and the like (the CLI prints them)
    graph_dumps: tuple[tuple[str, str], ...] = ()  # (file name, graph text) after capture and each pass


def _num(value: Any, point: Mapping[sympy.Symbol, int] | None) -> Any:
    if point is None or not isinstance(value, sympy.Basic):
        return value
    out = value.xreplace({k: sympy.Integer(v) for k, v in point.items()})
    try:
        return float(out)
    except TypeError:
        raise ValueError(f"expression {value} does not evaluate at {point}") from None


def _time_at(t: Any, point: Mapping[sympy.Symbol, int] | None) -> Any:
    """`OpTime.time_s` at `point`, its parts evaluated first: the same number as evaluating the
    symbolic time, without building sympy's Max of symbolic parts (tens of ms an op)."""
    if point is None:
        return t.time_s
    work = max(_num(t.compute_s, point), _num(t.memory_s, point), _num(t.comm_s, point))
    return float(work + _num(t.stall_s, point) + _num(t.latency_s, point) + _num(t.overhead_s, point))


def _bound(compute: float, memory: float, comm: float, overhead: float) -> str:
    work = max(compute, memory, comm)
    if overhead > work:
        return "overhead"
    if comm == work and comm > 0:
        return "comm"
    return "compute" if compute >= memory else "memory"


def _shape_text(shape: Iterable[Any], point: Mapping[sympy.Symbol, int] | None) -> str:
    parts = []
    for d in shape:
        v = _num(d, point)
        parts.append(str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return "(" + ", ".join(parts) + ")"


class Report:
    def __init__(self, costed: CostedGraph, context: ReportContext, point: Mapping[str, int] | None = None) -> None:
        self._costed = costed
        self.context = context
        self.point = dict(point) if point is not None else None
        self._subs = {SYMBOL_FOR_ARG[k]: v for k, v in point.items()} if point is not None else None
        if point is not None and self._subs is not None:  # B is per replica: DP replicas split the batch
            self._subs[B] = -(-point["batch_size"] // self.dp)
        # Multiplicity of every costed node: the real layers its representative layer stands for
        # (pipeline-stage transfers: one per stage boundary).
        self._mult = [len(context.layer_indices[n.rep_layer]) if n.rep_layer is not None else
                      (self.pp - 1 if n.phase == BOUNDARY_PHASE else 1) for n in costed.nodes]

    # ---- identity ---------------------------------------------------------------------
    @property
    def symbolic(self) -> bool:
        return self.point is None

    @property
    def model(self) -> str:
        return self.context.model

    @property
    def device(self) -> str:
        return self.context.device

    @property
    def engine(self) -> str:
        """The engine whose efficiency section timed the ops (backends/engines.py)."""
        profile = self.context.profile
        return profile.engine if profile is not None else ""

    @property
    def engine_requested(self) -> str:
        profile = self.context.profile
        return profile.engine_requested if profile is not None else ""

    @property
    def dp(self) -> int:
        return self.context.deployment.dp if self.context.deployment is not None else 1

    @property
    def pp(self) -> int:
        return self.context.deployment.pp if self.context.deployment is not None else 1

    @property
    def batch_size(self) -> Any:
        return self.point["batch_size"] if self.point else B

    @property
    def query_len(self) -> Any:
        return self.point["query_len"] if self.point else S

    @property
    def context_len(self) -> Any:
        return self.point["context_len"] if self.point else C

    @property
    def graph_dumps(self) -> tuple[tuple[str, str], ...]:
        return self.context.graph_dumps

    @property
    def warnings(self) -> tuple[str, ...]:
        """What the user should know about this result: options that did not apply, a context
        beyond the model's trained length."""
        found = list(self.context.warnings)
        limit = self.context.max_position_embeddings
        if self.point is not None and limit and self.point["context_len"] + self.point["query_len"] > limit:
            found.append(f"context_len + query_len = {self.point['context_len'] + self.point['query_len']} is beyond "
                         f"max_position_embeddings = {limit} of {self.model}: the model was not trained for it "
                         "(the cost is extrapolated)")
        return tuple(found)

    # ---- totals -----------------------------------------------------------------------
    def _sum(self, value_of: Any) -> Any:
        total = sum((m * value_of(n) for n, m in zip(self._costed.nodes, self._mult, strict=True)), sympy.Integer(0))
        return _num(total, self._subs)

    @cached_property
    def total_time_s(self) -> Any:
        if self._subs is not None:  # per op at the point (see _time_at)
            return float(sum(m * _time_at(n.time, self._subs) for n, m in zip(self._costed.nodes, self._mult,
                                                                             strict=True)))
        return self._sum(lambda n: n.time.time_s)

    @cached_property
    def total_flops(self) -> Any:
        return self._sum(lambda n: n.counts.total_flops)

    @cached_property
    def total_bytes(self) -> Any:
        return self._sum(lambda n: n.counts.bytes)

    @cached_property
    def total_comm_bytes(self) -> Any:
        return self._sum(lambda n: n.counts.comm_bytes)

    @property
    def tokens(self) -> Any:
        """Tokens the whole deployment processes in the step (every DP replica's)."""
        return self.batch_size * self.query_len if self.point else self.dp * B * S

    @cached_property
    def comm_time_s(self) -> Any:
        """Time of the collectives (summed, none overlapped)."""
        return self._sum(lambda n: n.time.time_s if n.kind == "collective" else 0)

    @property
    def overlapped_time_s(self) -> Any:
        """Step time if communication hid entirely behind compute (two micro-batches overlapping,
        as SGLang's two-batch overlap / vLLM's dual-batch overlap do): max(compute, comm)."""
        compute = self.total_time_s - self.comm_time_s
        if isinstance(compute, sympy.Basic) and not compute.is_number:
            return sympy.Max(compute, self.comm_time_s)
        return max(float(compute), float(self.comm_time_s))

    # ---- expert parallelism (report/overlap.py) ----
    @cached_property
    def ep_comm_time_s(self) -> Any:
        """Time of the expert-parallel exchanges (ep_dispatch + ep_combine, or ep_allgather + ep_reducescatter), summed."""
        from .overlap import EXCHANGE_OPS

        return self._sum(lambda n: n.time.time_s if n.op in EXCHANGE_OPS else 0)

    @cached_property
    def ep_overlapped_time_s(self) -> Any:
        """Step time with each MoE layer's EP dispatch/combine overlapped with its shared experts
        (single-batch overlap); equals `total_time_s` without EP exchanges or shared experts."""
        from ..backends.roofline import ExecutionMode
        from .overlap import shared_expert_overlap_s

        mode = ExecutionMode(cuda_graphs=str(self.context.options.get("cuda_graphs", "auto")))
        hidden = shared_expert_overlap_s(self._costed.nodes, self._mult, self.context.profile, mode)
        return self.total_time_s - _num(hidden, self._subs)

    @property
    def tokens_per_s(self) -> Any:
        return self.tokens / self.total_time_s

    # ---- speculative decoding (MTP) ----------------------------------------------------
    @property
    def speculative(self) -> Any:
        return self.context.speculative

    @property
    def accepted_tokens_per_step(self) -> Any:
        """Tokens a decode step emits per sequence: 1 without MTP, 1 + a + ... + a^N with N drafts."""
        return self.speculative.tokens_per_step if self.speculative is not None else 1

    @property
    def time_per_output_token_s(self) -> Any:
        """Decode: step time per emitted token of one sequence (with MTP, per accepted token)."""
        return self.total_time_s / self.accepted_tokens_per_step

    @property
    def output_tokens_per_s(self) -> Any:
        """Decode: tokens emitted per second over the batch."""
        return self.batch_size * self.accepted_tokens_per_step / self.total_time_s

    @cached_property
    def flops_by_precision(self) -> dict[str, Any]:
        keys = sorted({k for n in self._costed.nodes for k in n.counts.flops})
        return {k: self._sum(lambda n, k=k: n.counts.flops.get(k, 0)) for k in keys}

    # ---- memory and parameters ----------------------------------------------------------
    @cached_property
    def activation_peak_bytes(self) -> Any:
        if self._costed.activations is not None:  # from the trace cache: no torch needed
            candidates = list(self._costed.activations)
        else:
            from ..memory import activation_candidates

            candidates = activation_candidates(self._costed)
        if self._subs is None:
            return sympy.Max(*candidates, evaluate=False) if len(candidates) > 1 else candidates[0]
        return max(_num(c, self._subs) if isinstance(c, sympy.Basic) else float(c) for c in candidates)

    @cached_property
    def memory(self) -> Memory:
        """Per GPU: one rank's weights (sharded, quantized), KV cache and activation peak; with
        pipeline stages, the heaviest stage's."""
        if self.pp > 1:
            from ..deployment.pipeline import stages

            parts = stages(self)
            worst = max(parts, key=lambda st: st.weights_bytes if self.symbolic else float(st.memory_bytes))
            return Memory(weights_bytes=worst.weights_bytes, kv_cache_bytes=worst.kv_cache_bytes,
                          activation_peak_bytes=worst.activation_peak_bytes)
        weights = sum((p.nbytes for p in self.context.params), 0.0)
        kv = self._sum(lambda n: n.counts.state_bytes)
        return Memory(weights_bytes=weights, kv_cache_bytes=kv, activation_peak_bytes=self.activation_peak_bytes)

    @property
    def per_gpu_memory_bytes(self) -> Any:
        """What the most loaded GPU needs (symbolic: the max over pipeline stages)."""
        if self.pp > 1 and self.symbolic:
            from ..deployment.pipeline import stages

            return sympy.Max(*[st.memory_bytes for st in stages(self)])
        return self.memory.total_bytes

    def _kind_of(self, node: CostedNode) -> str:
        if node.rep_layer is not None:
            return self.context.kind_names[node.rep_layer] if self.context.kind_names else "layer"
        for prefix, name in self.context.extra_kind_names:  # an MTP block's layer holds its own cache
            if node.module == prefix or node.module.startswith(prefix + "."):
                return name
        return "other"

    @cached_property
    def kv_cache_by_kind(self) -> dict[str, Any]:
        """KV cache / state bytes per attention kind (full, sliding(W), mla, linear), per GPU,
        MTP blocks' layers included: the kinds add up to `memory.kv_cache_bytes`."""
        out: dict[str, Any] = {}
        for n, m in zip(self._costed.nodes, self._mult, strict=True):
            if n.counts.state_bytes is not None and n.counts.state_bytes != 0:
                name = self._kind_of(n)
                out[name] = out.get(name, 0) + m * n.counts.state_bytes
        return {k: _num(v, self._subs) for k, v in out.items()}

    @cached_property
    def fit(self) -> Any:
        """Fits / does not fit on this device, max batch and context, alternatives (deployment/fit.py)."""
        from ..deployment.fit import fit

        return fit(self)

    @cached_property
    def pipeline(self) -> Any:
        """Per-stage time and memory, latency, steady-state step and bubble (pp > 1), else None."""
        if self.pp <= 1 or self.symbolic:
            return None
        from ..deployment.pipeline import summary

        return summary(self)

    def symbolic_view(self) -> Report:
        return self if self.symbolic else Report(self._costed, self.context)

    @cached_property
    def num_parameters(self) -> int:
        return sum(p.total for p in self.context.model_params or self.context.params)

    @cached_property
    def active_parameters(self) -> int:
        """Parameters one token's forward multiplies by: routed experts at top_k / num_experts,
        the unembedding (lm_head) counted, the input embedding not (a row lookup; when tied to
        the lm_head it counts once, as the lm_head). This is the convention of OpenAI's gpt-oss
        model card (gpt-oss-120b: 5.13B active = attention + active MLP + unembedding)."""
        tied = self.context.tied_embeddings
        return round(sum(p.total * p.active_fraction for p in self.context.model_params or self.context.params
                         if tied or not p.input_embedding))

    @property
    def free_ops(self) -> list[FreeOp]:
        return [FreeOp(op=op, reason=reason, count=count)
                for (op, reason), count in sorted(self._costed.free_ops.items())]

    # ---- rows -------------------------------------------------------------------------
    def _node_values(self, node: CostedNode) -> dict[str, Any]:
        t = node.time
        values = {
            "flops": _num(node.counts.total_flops, self._subs),
            "bytes": _num(node.counts.bytes, self._subs),
            "time_s": _time_at(t, self._subs),
            "compute_s": _num(t.compute_s, self._subs),
            "memory_s": _num(t.memory_s, self._subs),
            "comm_s": _num(t.comm_s, self._subs),
            "overhead_s": _num(t.overhead_s, self._subs),
            "latency_s": _num(t.kernel_latency_s, self._subs),
        }
        if self._subs is not None:
            values["bound"] = _bound(values["compute_s"], values["memory_s"], values["comm_s"], values["overhead_s"])
        else:
            values["bound"] = "symbolic"
        return values

    @cached_property
    def ops(self) -> list[OpRow]:
        """One row per op per real layer, in execution order (prologue, layers, epilogue)."""
        nodes = self._costed.nodes
        values = [self._node_values(n) for n in nodes]
        by_rep: dict[int, list[int]] = {}
        for i, n in enumerate(nodes):
            if n.rep_layer is not None:
                by_rep.setdefault(n.rep_layer, []).append(i)
        kind_of_layer = {j: r for r, indices in enumerate(self.context.layer_indices) for j in indices}
        sequence: list[tuple[int, int | None]] = [(i, None) for i, n in enumerate(nodes) if n.phase == "prologue"]
        boundary = [i for i, n in enumerate(nodes) if n.phase == BOUNDARY_PHASE]
        stage_ends = {s[-1] for s in self.context.deployment.stages[:-1]} if self.pp > 1 else set()
        for index in range(self.context.num_layers):
            sequence += [(i, index) for i in by_rep.get(kind_of_layer[index], [])]
            if index in stage_ends:
                sequence += [(i, None) for i in boundary]
        sequence += [(i, None) for i, n in enumerate(nodes) if n.phase == "epilogue"]
        rows: list[OpRow] = []
        clock: Any = 0.0
        for i, layer in sequence:
            n, v = nodes[i], values[i]
            module = n.module if layer is None else _in_layer(n.module, self.context.layers_path, n.rep_layer, layer)
            rows.append(OpRow(
                name=n.name if layer is None else f"layers.{layer}.{n.name}", op=n.op, kind=n.kind, layer=layer,
                phase=n.phase, module=module, shapes=", ".join(_shape_text(s, self._subs) for s in n.input_shapes), dtype=n.dtype,
                flops=v["flops"], bytes=v["bytes"], time_s=v["time_s"], compute_s=v["compute_s"],
                memory_s=v["memory_s"], comm_s=v["comm_s"], overhead_s=v["overhead_s"], bound=v["bound"],
                launches=n.counts.launches, start_s=clock, fallbacks=n.time.fallbacks,
                state_bytes=_num(n.counts.state_bytes, self._subs), latency_s=v["latency_s"],
            ))
            if self._subs is not None:
                clock += v["time_s"]
        return rows

    # ---- symbolic -----------------------------------------------------------------------
    def evaluate(self, batch_size: int, query_len: int, context_len: int = 0) -> Report:
        point = {"batch_size": batch_size, "query_len": query_len, "context_len": context_len}
        validate_point(point)
        return Report(self._costed, self.context, point)

    def sweep(self, batch_size: Any, query_len: Any, context_len: Any = 0,
              metrics: Iterable[str] = ("total_time_s", "tokens_per_s", "total_flops", "total_bytes")) -> dict[str, np.ndarray]:
        """Totals over arrays of points (broadcast together), from one lambdified expression each.

        Every point is checked as `evaluate` checks one (integers, batch and query >= 1, context
        >= 0): a bad value is an error, never a NaN or a negative count in the result."""
        metrics = tuple(metrics) if not isinstance(metrics, str) else (metrics,)
        unknown = [m for m in metrics if m not in SWEEP_METRICS]
        if unknown:
            raise InvalidArgumentError(f"unknown sweep metric(s) {unknown}; accepted: {', '.join(SWEEP_METRICS)}")
        symbolic = self if self.symbolic else Report(self._costed, self.context)
        values = {}
        for name, given in zip(POINT_ARGS, (batch_size, query_len, context_len), strict=True):
            try:
                values[name] = np.asarray(given, dtype=float)
            except (TypeError, ValueError):
                raise InvalidArgumentError(f"sweep: {name} must be numbers (a number or an array), got {given!r}") from None
            minimum = 0 if name == "context_len" else 1
            bad = ~np.isfinite(values[name]) | (values[name] < minimum) | (values[name] != np.round(values[name]))
            if bad.any():
                raise InvalidArgumentError(f"sweep: {name} must be integers >= {minimum}, got "
                                           f"{float(values[name][bad].ravel()[0])!r} among {np.size(values[name])} value(s)")
        try:
            arrays = list(np.broadcast_arrays(*values.values()))
        except ValueError:
            shapes = ", ".join(f"{k} {np.shape(v)}" for k, v in values.items())
            raise InvalidArgumentError(f"sweep: the arrays do not broadcast together ({shapes}); give equal shapes, "
                                       "or scalars and one array") from None
        arrays[0] = np.ceil(arrays[0] / self.dp)  # the per-replica batch
        out: dict[str, np.ndarray] = {}
        for metric in metrics:
            fn = symbolic._lambdified(metric)
            out[metric] = np.broadcast_to(np.asarray(fn(*arrays), dtype=float), arrays[0].shape).copy()
        return out

    def _lambdified(self, metric: str) -> Any:
        cache = self.__dict__.setdefault("_lambdas", {})
        if metric not in cache:
            if metric == "kv_cache_bytes":
                expr = self.memory.kv_cache_bytes
            elif metric == "activation_peak_bytes":
                expr = self.memory.activation_peak_bytes
            else:
                expr = getattr(self, metric)
            cache[metric] = sympy.lambdify((B, S, C), expr, modules="numpy")
        return cache[metric]

    # ---- rendering ----------------------------------------------------------------------
    def table(self, by: str = "op", top: int | None = None) -> str:
        from .table import render_table

        return render_table(self, by=by, top=top)

    def summary(self) -> str:
        from .table import render_summary

        return render_summary(self)

    def to_dict(self) -> dict[str, Any]:
        from .serialize import report_to_dict

        return report_to_dict(self)

    def to_json(self, indent: int | None = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def chrome_trace(self) -> dict[str, Any]:
        from .trace import chrome_trace

        return chrome_trace(self)

    def __repr__(self) -> str:
        where = ", ".join(f"{k}={v}" for k, v in self.point.items()) if self.point else "symbolic"
        return f"Report({self.model} on {self.device}, {where}, time={pretty(self.total_time_s)} s)"


def _in_layer(module: str, layers_path: str, rep_layer: Any, layer: int) -> str:
    """The module path of a representative layer's module in real layer `layer`."""
    own, real = f"{layers_path}.{rep_layer}", f"{layers_path}.{layer}"
    if module == own or module.startswith(own + "."):
        return real + module[len(own):]
    return module


# what `Report.sweep` can evaluate over arrays of points
SWEEP_METRICS = ("total_time_s", "tokens_per_s", "total_flops", "total_bytes", "total_comm_bytes",
                 "kv_cache_bytes", "activation_peak_bytes")


def validate_point(point: Mapping[str, Any]) -> None:
    for name in POINT_ARGS:
        value = point[name]
        minimum = 0 if name == "context_len" else 1
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
            raise InvalidArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}")
