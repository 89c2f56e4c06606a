"""The analysis pipeline, stage by stage: spec -> representative model -> graph -> passes -> cost.

Owns `trace(spec, ...)` (build + capture + rewrite, cached in-process: a traced graph is
symbolic in B, S, C, so every shape point, device, sweep and cost-only knob reuses it;
`clear_cache()` empties it), `traced_costs(...)` (the trace's device-independent costs, cached
in-process and on disk: tensor_cast/cache/) and `analyze_spec(...)` (re-time those costs on a
device and wrap them in a `Report`). The public entry points in `api.py` resolve user arguments
and call these.
"""

from __future__ import annotations

import json
import sys
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends.device import DeviceProfile
from .backends.efficiency import gemm_variants, uncalibrated_gemm_notes
from .backends.roofline import ExecutionMode
from .cache.record import TracedCosts
from .cache.store import CacheStore, cache_enabled, make_key
from .cache.timed import costed as timed_costed
from .costed import ParamEntry
from .deployment.config import ResolvedDeployment, TraceDeployment
from .gc_pause import paused_gc
from .models.spec import ModelSpec
from .outputs import DumpSet, check_directory, write_all
from .progress import step
from .report import Report, ReportContext
from .speculative import SpeculativeDecoding

if TYPE_CHECKING:
    from torch import fx

    from .backends.formulas.registry import CostKnobs
    from .capture import CapturedGraph
    from .models.build import RepresentativeModel

# Tracing (build, capture, passes, costing) imports torch and transformers inside the functions
# that trace: a report rebuilt from the disk cache needs neither (tests/test_cli_startup.py).

TRACE_CACHE_SIZE = 16
# ExecutionOptions fields that do not change the traced graph (the knobs, and how kernels run)
COST_ONLY = ("cuda_graphs", "moe_skew", "mla_form")


@dataclass(frozen=True)
class ExecutionOptions:
    """The execution model being predicted (an optimized serving engine by default).

    Fields in `COST_ONLY` change what ops cost, not the graph: they are not part of the trace
    cache key, so changing one re-costs the cached graph and never re-traces it.
    """

    fuse: bool = True  # fused QKV / gate+up GEMMs, norms, activations, RoPE (vLLM/SGLang kernels)
    cuda_graphs: str = "auto"  # auto: decode-sized steps run in CUDA graphs | always | never
    mla_form: str = "auto"  # MLA kernels: auto (absorbed for decode and sparse, expanded for prefill) | absorbed | expanded
    mtp: int = 0  # MTP draft passes per step (speculative decoding); 0: off
    # sharding, quantization, collectives (one rank's graph)
    deployment: TraceDeployment = field(default_factory=TraceDeployment)
    moe_skew: float = 0.0  # MoE routing skew (Zipf exponent of expert popularity; 0: uniform)
    # TP all-reduce + residual add + RMSNorm in one kernel (backends/engines.py ALLREDUCE_FUSION);
    # changes the graph (passes/fuse_allreduce_add_rms_norm.py), so it is part of the trace key
    allreduce_fusion: bool = False

    def knobs(self) -> CostKnobs:
        """The cost-only modelling choices the cost rules read (`OpCall.knobs`)."""
        from .backends.formulas.registry import CostKnobs  # the rules' module: torch (tracing only)

        return CostKnobs(moe_skew=self.moe_skew, mla_form=self.mla_form)


@dataclass
class TracedModel:
    rep: RepresentativeModel
    captured: CapturedGraph
    graph: fx.GraphModule
    dumps: list[tuple[str, str]] | None = None  # (file name, graph text) per pass; None: not rendered
    seconds: dict[str, float] = field(default_factory=dict)
    model_params: tuple[ParamEntry, ...] | None = None  # the whole model's, when `rep` is one rank's

    def write_dumps(self, directory: str | Path) -> list[Path]:
        """All dumps or none (tensor_cast/outputs.py); stale dumps of an earlier run are removed."""
        if self.dumps is None:
            raise RuntimeError("this trace was made without graph dumps: trace(..., dumps=True)")
        folder = check_directory(directory, "dump_graph")
        return write_all((), [DumpSet(folder, tuple(self.dumps))])


_CACHE: OrderedDict[str, TracedModel] = OrderedDict()
_RECORDS: OrderedDict[str, TracedCosts] = OrderedDict()


def clear_cache() -> None:
    """Forget every traced graph of this process (`tensor_cast.clear_cache()`): the next analysis
    of any model builds and captures it again (the disk cache stays: `tensor-cast cache clear`).
    Frees the memory the graphs hold."""
    _CACHE.clear()
    _RECORDS.clear()


def _cache_key(spec: ModelSpec, options: ExecutionOptions) -> str:
    """Everything that changes the traced graph (the shape point and the device do not)."""
    traced = {k: v for k, v in asdict(options).items() if k not in COST_ONLY}
    return json.dumps([spec.key(), dict(spec.hf_config), traced], sort_keys=True, default=str)


def trace(spec: ModelSpec, options: ExecutionOptions = ExecutionOptions(), *, dumps: bool = False) -> TracedModel:
    """Build, capture and rewrite `spec` once per (spec, options) in this process.

    Graph dumps (the graph as text after capture and after every pass) are rendered only with
    `dumps=True`; a cached trace made without them is traced again when they are asked for.
    """
    key = _cache_key(spec, options)
    cached = _CACHE.get(key)
    if cached is not None and (cached.dumps is not None or not dumps):
        _CACHE.move_to_end(key)
        return cached
    # building and capturing: about 1 s of a Qwen3-8B trace on 2 cores is GC walks otherwise
    with paused_gc():
        traced = _trace(spec, options, dumps=dumps)
    _CACHE[key] = traced
    while len(_CACHE) > TRACE_CACHE_SIZE:
        _CACHE.popitem(last=False)
    return traced


def _trace(spec: ModelSpec, options: ExecutionOptions, *, dumps: bool) -> TracedModel:
    from .capture import capture
    from .capture.experts_interface import check_moe_capture, experts_function
    from .deployment.sharding import rank_spec
    from .memory import parameter_table
    from .models.build import build_representative
    from .passes import build_pipeline, run_pipeline
    from .report.graph_dump import dump_graph

    timings: dict[str, float] = {}
    step(f"building {spec.name} ({len(spec.layers)} layers, {len(set(spec.layers))} distinct) on meta")
    start = time.perf_counter()
    # one rank's model: sharded before capture
    rep = build_representative(rank_spec(spec, options.deployment), mtp=options.mtp)
    model_params = tuple(parameter_table(build_representative(spec, mtp=options.mtp))) \
        if options.deployment.sharded else None
    timings["build_s"] = time.perf_counter() - start
    step("capturing the forward with torch.compile (symbolic B, S, C)")
    start = time.perf_counter()
    captured = capture(rep.model, experts=experts_function(rep), layers=rep.layer_modules())
    timings["capture_s"] = time.perf_counter() - start
    step("rewriting the graph (passes)")
    start = time.perf_counter()
    rendered: list[tuple[str, str]] = []
    on_pass = None
    if dumps:  # passes rewrite the graph in place: render each state as it goes by
        rendered.append(("00_capture.txt", dump_graph(captured.gm)))
        on_pass = lambda i, name, g: rendered.append((f"{i:02d}_{name}.txt", dump_graph(g)))  # noqa: E731
    gm = run_pipeline(captured.gm, build_pipeline(options), on_pass=on_pass)
    timings["passes_s"] = time.perf_counter() - start
    check_moe_capture(rep, gm)
    return TracedModel(rep=rep, captured=captured, graph=gm, dumps=rendered if dumps else None, seconds=timings,
                       model_params=model_params)


def _kind_name(layer: Any) -> str:
    a = layer.attention
    return a.describe()


def traced_costs(spec: ModelSpec, options: ExecutionOptions, profile: DeviceProfile, *,
                 cache: bool = True) -> TracedCosts:
    """The device-independent costs of `spec`'s trace: from this process, else from the disk
    cache (`cache=True` and not turned off by TENSOR_CAST_CACHE=0), else traced and stored."""
    key = make_key([spec.key(), dict(spec.hf_config), asdict(options)])
    store = CacheStore() if cache and cache_enabled() else None
    record = _RECORDS.get(key)
    if record is not None:
        _RECORDS.move_to_end(key)
        if store is not None and not store.path(key).exists():  # traced earlier with the cache off
            _store(store, record)
        return record
    record = store.load(key) if store is not None else None
    if record is None:
        record = _record(key, trace(spec, options), profile, options)
        if store is not None:
            _store(store, record)
    _RECORDS[key] = record
    while len(_RECORDS) > TRACE_CACHE_SIZE:
        _RECORDS.popitem(last=False)
    return record


def _store(store: CacheStore, record: TracedCosts) -> None:
    try:
        store.store(record)
    except OSError as exc:
        print(f"tensor-cast: warning: trace cache not written ({exc}); use --no-cache to skip it", file=sys.stderr)


def _record(key: str, traced: TracedModel, profile: DeviceProfile, options: ExecutionOptions) -> TracedCosts:
    from .costing import cost_graph
    from .invariants import check_layer_coverage
    from .memory import activation_candidates, parameter_table, rank_shares, stored_bytes

    mode = ExecutionMode(cuda_graphs=options.cuda_graphs)
    costed = cost_graph(traced.graph, traced.captured.to_expr, profile=profile, mode=mode,
                        knobs=options.knobs())
    check_layer_coverage(costed, traced.rep)
    params = parameter_table(traced.rep, bytes_per_element=stored_bytes(traced.graph),
                             share=rank_shares(traced.graph))
    return TracedCosts(
        key=key, nodes=tuple(costed.nodes), free_ops=tuple(sorted(costed.free_ops.items())),
        activations=tuple(activation_candidates(costed)), params=tuple(params), model_params=traced.model_params,
        layer_indices=traced.rep.layer_indices, layers_path=traced.rep.layers_path,
        kind_names=tuple(_kind_name(k) for k in traced.rep.kinds),
        extra_kind_names=tuple((prefix, _kind_name(layer)) for prefix, layer in traced.rep.extra_layers),
        seconds=tuple(sorted(traced.seconds.items())))


def analyze_spec(spec: ModelSpec, profile: DeviceProfile, *, options: ExecutionOptions = ExecutionOptions(),
                 point: dict[str, int] | None = None, dump_graph_dir: str | Path | None = None,
                 notes: tuple[str, ...] = (), extra_options: dict[str, Any] | None = None,
                 speculative: SpeculativeDecoding | None = None,
                 deployment: ResolvedDeployment | None = None, warnings: tuple[str, ...] = (),
                 cache: bool = True, graph_dumps: bool = False) -> Report:
    """Re-time the trace's costs on `profile`; graph dumps are rendered only with
    `graph_dumps=True` or a `dump_graph_dir` (which also writes them)."""
    if dump_graph_dir is not None:
        check_directory(dump_graph_dir, "dump_graph")  # before the work, not after it
    graph_dumps = graph_dumps or dump_graph_dir is not None
    # the graphs themselves are not on disk: dumps need the trace (in-process cache only)
    traced = trace(spec, options, dumps=True) if graph_dumps else None
    record = traced_costs(spec, options, profile, cache=cache)
    step(f"costing {len(record.nodes)} graph nodes on {profile.name}")
    mode = ExecutionMode(cuda_graphs=options.cuda_graphs)
    costed = timed_costed(record, profile, mode, CacheStore() if cache and cache_enabled() else None)
    if deployment is not None and deployment.pp > 1:  # stage-to-stage transfers (not in the graph)
        from .deployment.pipeline import boundary_node

        costed.nodes.append(boundary_node(spec.hidden_size, spec.dtype, deployment, profile, mode))
    context = ReportContext(
        model=spec.name,
        device=profile.name,
        architecture=spec.architecture,
        layer_indices=record.layer_indices,
        layers_path=record.layers_path,
        num_layers=spec.num_layers,
        params=record.params,
        options={"fuse": options.fuse, "cuda_graphs": options.cuda_graphs, "mla_form": options.mla_form,
                 "mtp": options.mtp, "moe_skew": options.moe_skew,
                 # only when it changed the graph: reports without TP fusion read as before
                 **({"allreduce_fusion": True} if options.allreduce_fusion else {}), **(extra_options or {})},
        notes=notes + (deployment.notes if deployment is not None else ()) + uncalibrated_gemm_notes(
            gemm_variants(costed.nodes), profile.efficiency, profile.engine_requested or profile.engine, profile.name),
        deployment=deployment,
        model_params=record.model_params,
        capacity_bytes=profile.memory_bytes,
        tied_embeddings=spec.tie_word_embeddings,
        max_position_embeddings=spec.max_position_embeddings,
        kind_names=record.kind_names,
        extra_kind_names=record.extra_kind_names,
        speculative=speculative,
        profile=profile,
        graph_dumps=tuple(traced.dumps or ()) if graph_dumps and traced is not None else (),
        warnings=warnings,
    )
    report = Report(costed, context, point)
    if dump_graph_dir is not None and traced is not None:
        traced.write_dumps(dump_graph_dir)
    return report
