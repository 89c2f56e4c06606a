"""Fit a device profile's `[efficiency]` and `[overhead]` parameters from kernel measurements.

Shared by `calibrate_device.py` (measure on a GPU, then fit and write a profile) and
`fidelity.py` (check a profile against measurements; cross-validate the fit). The H100 profile's
numbers come from running exactly this code on `shared/calibration/h100/h100_microbench.csv`
(`python benchmarks/calibrate_device.py --from-csv ... --base backends/profiles/h100_sxm.toml`).

Stages, each a small least-squares fit of log(predicted / measured) over the rows that inform
it (a stage may name a robust loss, `Stage.loss`), with the parameters of earlier stages fixed (`STAGES`):

1. ceilings and floor (no fit): measured large-GEMM throughput per precision and device-copy
   bandwidth as fractions of the datasheet peaks; the per-kernel floor inside a CUDA graph (the
   fastest single kernel timed in one);
2. memory-bound kernels: each kind's achieved bandwidth and bandwidth ramp (norm, activation,
   elementwise, embedding, other);
3. GEMM: weight-streaming bandwidth, latency, compute/memory overlap, per-tile K overhead,
   split-K penalty, wave quantization;
4. attention: FlashAttention throughput, KV-read bandwidth and the two latencies;
5. launch gaps (`fit_launch_gap`): eager minus CUDA-graph step time of whole-model rows over
   the number of kernels tensor_cast counts for that step.

Fixed, not fitted (kernel structure, cited where used): tile sizes, the attention q-block and
the Graham tail factor. `cross_validate` refits a stage without each group of rows (a model's
projection, one attention shape) and predicts the group: the held-out error `fidelity.py`
reports. Needs scipy (`pip install scipy`); imported only when fitting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

from calibration_cases import Case, Row

from tensor_cast.backends.device import DeviceProfile


@dataclass(frozen=True)
class Param:
    key: str  # "efficiency.<key>" or "overhead.<key>"
    initial: float
    low: float
    high: float
    meaning: str = ""


@dataclass(frozen=True)
class Stage:
    name: str
    params: tuple[Param, ...]
    fixed: Mapping[str, float] = field(default_factory=dict)  # set before fitting, never fitted
    note: str = ""
    # scipy's least_squares loss on the log residuals: "linear" (least squares) or a robust one
    # ("soft_l1", "huber", ...) for tables whose glitches the isolated-row rule cannot flag, with
    # `loss_scale` the log residual (0.1: ~10 %) beyond which a row's pull grows slower than squared
    loss: str = "linear"
    loss_scale: float = 1.0

    def __post_init__(self) -> None:
        if self.loss not in LOSSES or not self.loss_scale > 0:
            raise ValueError(f"stage {self.name!r}: loss must be one of {', '.join(LOSSES)} with a positive "
                             f"loss_scale, got {self.loss!r}, {self.loss_scale!r}")


LOSSES = ("linear", "soft_l1", "huber", "cauchy", "arctan")  # scipy.optimize.least_squares' losses


STAGES: tuple[Stage, ...] = (
    Stage("memory-bound", (
        Param("efficiency.elementwise_memory", 0.9, 0.2, 1.0, "elementwise kernels' bandwidth fraction"),
        Param("efficiency.elementwise_memory_latency_us", 0.3, 0.0, 20.0, "elementwise ramp"),
        Param("efficiency.norm_memory", 0.6, 0.2, 1.0, "fused (add+)RMSNorm bandwidth fraction"),
        Param("efficiency.norm_memory_latency_us", 1.0, 0.0, 20.0, "fused norm ramp (one CTA per row)"),
        Param("efficiency.activation_memory", 0.5, 0.2, 1.0, "fused act-and-mul bandwidth fraction"),
        Param("efficiency.activation_memory_latency_us", 0.5, 0.0, 20.0, "fused act-and-mul ramp"),
        Param("efficiency.embedding_memory", 0.8, 0.2, 1.0, "embedding gather bandwidth fraction"),
        Param("efficiency.embedding_memory_latency_us", 0.5, 0.0, 20.0, "embedding ramp"),
        Param("efficiency.other_memory", 0.5, 0.1, 1.0, "sort/select/argmax bandwidth fraction"),
        Param("efficiency.other_memory_latency_us", 10.0, 0.0, 100.0, "argmax over the vocabulary: multi-pass"),
    )),
    Stage("gemm", (
        Param("efficiency.gemm_memory", 0.85, 0.3, 1.0, "weight-streaming bandwidth fraction"),
        Param("efficiency.gemm_latency_us", 1.0, 0.0, 20.0, "GEMM latency beyond the graph floor"),
        Param("efficiency.gemm_overlap", 0.1, 0.0, 1.0, "share of min(compute, memory) not overlapped"),
        Param("efficiency.gemm_k_overhead", 150.0, 0.0, 5000.0, "per-tile prologue/epilogue, in steps of K"),
        Param("efficiency.gemm_splitk_us", 4.0, 0.0, 30.0, "split-K reduction when tiles cannot fill the SMs"),
        Param("efficiency.gemm_wave_quantization", 0.1, 0.0, 1.0, "share of the last wave's idle SMs lost"),
    ), fixed={"efficiency.gemm_tile_m": 128, "efficiency.gemm_tile_n": 256, "efficiency.gemm_splitk_tile_n": 64},
        note="tiles: Hopper cuBLAS/CUTLASS bf16 128x256 (wave quantization), 64-wide columns for small-M kernels"),
    Stage("attention", (
        Param("efficiency.attention_compute", 0.6, 0.2, 1.0, "FlashAttention throughput, fraction of bf16 peak"),
        Param("efficiency.attention_memory", 0.9, 0.3, 1.0, "decode KV-read bandwidth fraction"),
        Param("efficiency.attention_memory_latency_us", 3.0, 0.0, 20.0, "decode split-KV combine"),
        Param("efficiency.attention_latency_us", 1.0, 0.0, 20.0, "attention latency beyond the graph floor"),
    ), fixed={"efficiency.attention_block_q": 128, "efficiency.attention_tail": 1.0},
        note="q-block 128 rows (FlashAttention-2/3, cuDNN on Hopper for d=128); tail 1 = Graham's bound"),
)
OVERHEAD_FIELDS = {"graph_kernel_us": "graph_kernel_us", "kernel_launch_us": "kernel_launch_us",
                   "graph_max_tokens": "graph_max_tokens"}


def with_values(profile: DeviceProfile, values: Mapping[str, float]) -> DeviceProfile:
    """A copy of `profile` with `efficiency.<k>` / `overhead.<k>` values replaced."""
    efficiency = dict(profile.efficiency)
    changes: dict[str, Any] = {}
    for key, value in values.items():
        section, name = key.split(".", 1)
        if section == "efficiency":
            efficiency[name] = value
        elif section == "overhead":
            changes[OVERHEAD_FIELDS[name]] = int(value) if name == "graph_max_tokens" else float(value)
        else:
            raise KeyError(key)
    return replace(profile, efficiency=MappingProxyType(efficiency), **changes)


def round_sig(value: float, digits: int = 3) -> float:
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))


# ---- stage 1: ceilings ----------------------------------------------------------------------------
def ceiling_values(cases: Sequence[Case], profile: DeviceProfile) -> tuple[dict[str, float], dict[str, str]]:
    """Measured ceilings as fractions of the datasheet peaks, with their provenance."""
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    for case in cases:
        if case.stage != "ceiling":
            continue
        op = case.ops[0]
        if case.cls == "ceiling copy":
            achieved = float(op.counts.bytes) / case.measured_s
            values["efficiency.memory"] = achieved / (profile.memory_bandwidth_gbps * 1e9)
            sources["efficiency.memory"] = f"device copy {achieved / 1e9:.1f} GB/s read+write"
            continue
        (precision, flops), = op.counts.flops.items()
        rate, _ = profile.rate(precision)
        achieved = float(flops) / case.measured_s
        key = "efficiency.gemm_compute" if precision == "bf16" else f"efficiency.gemm_compute_{precision}"
        values[key] = achieved / rate
        sources[key] = f"{case.row.name}: {achieved / 1e12:.1f} TFLOP/s sustained"
    if "efficiency.gemm_compute" in values:
        values["efficiency.gemm"] = values["efficiency.gemm_compute"]  # flat fallback for other kinds
        sources["efficiency.gemm"] = "= gemm_compute: tensor-core fraction for kinds without their own (moe, ...)"
        values.setdefault("efficiency.gemm_compute_fp16", values["efficiency.gemm_compute"])
        sources.setdefault("efficiency.gemm_compute_fp16", "transferred from bf16 (same tensor-core rate)")
    return values, sources


def graph_floor(cases: Sequence[Case]) -> tuple[dict[str, float], dict[str, str]]:
    """The per-kernel floor inside a CUDA graph: the fastest single memory-bound kernel measured in
    one (launch gap plus the shortest kernel the GPU runs); every kernel pays at least this."""
    single = [c for c in cases if len(c.ops) == 1 and c.stage == "memory-bound"]
    if not single:
        return {}, {}
    fastest = min(single, key=lambda c: c.measured_s)
    return ({"overhead.graph_kernel_us": fastest.measured_s * 1e6},
            {"overhead.graph_kernel_us": f"fastest single kernel timed in a CUDA graph: {fastest.row.name} "
                                         f"{fastest.row.params} = {fastest.row.median_us:.2f} us"})


# ---- stages 2-4: least squares ------------------------------------------------------------------
def _least_squares() -> Callable[..., Any]:
    try:
        from scipy.optimize import least_squares
    except ImportError:  # pragma: no cover - depends on the environment
        raise SystemExit("fitting needs scipy: pip install scipy") from None
    return least_squares


def residuals(cases: Sequence[Case], profile: DeviceProfile) -> list[float]:
    return [math.log(c.predict(profile) / c.measured_s) for c in cases]


def fit_stage(stage: Stage, cases: Sequence[Case], profile: DeviceProfile) -> dict[str, float]:
    """Fitted values of `stage.params` (plus its fixed values) on `cases`, other values from `profile`."""
    least_squares = _least_squares()
    used = [c for c in cases if c.stage == stage.name]
    if not used:
        return {}
    fixed = dict(stage.fixed)
    base = with_values(profile, fixed)
    keys = [p.key for p in stage.params]

    def objective(x: Sequence[float]) -> list[float]:
        return residuals(used, with_values(base, dict(zip(keys, x))))

    x0 = [min(max(p.initial, p.low), p.high) for p in stage.params]
    result = least_squares(objective, x0, bounds=([p.low for p in stage.params], [p.high for p in stage.params]),
                           x_scale="jac", loss=stage.loss, f_scale=stage.loss_scale)
    return {**fixed, **dict(zip(keys, (float(v) for v in result.x)))}


@dataclass
class FitResult:
    values: dict[str, float]
    sources: dict[str, str]
    profile: DeviceProfile


def fit_profile(cases: Sequence[Case], profile: DeviceProfile, stages: Sequence[Stage] = STAGES,
                digits: int = 3, provenance: str = "") -> FitResult:
    """Ceilings, then every stage in order (each with the earlier ones' values fixed).

    `provenance` (the data file, GPU, date) is appended to every source entry."""
    values, sources = ceiling_values(cases, profile)
    floor, floor_source = graph_floor(cases)
    values.update(floor)
    sources.update(floor_source)
    values = {k: round_sig(v, digits + 1) for k, v in values.items()}
    current = with_values(profile, values)
    for stage in stages:
        fitted = {k: round_sig(v, digits) for k, v in fit_stage(stage, cases, current).items()}
        values.update(fitted)
        current = with_values(current, fitted)
        n = sum(c.stage == stage.name for c in cases)
        for param in stage.params:
            if param.key in fitted:
                sources[param.key] = f"fitted ({stage.name}, {n} rows): {param.meaning}"
        for key in stage.fixed:
            sources[key] = f"fixed: {stage.note}"
    if provenance:
        sources = {k: f"{v} [{provenance}]" for k, v in sources.items()}
    return FitResult(values=values, sources=sources, profile=current)


def cross_validate(cases: Sequence[Case], profile: DeviceProfile, stages: Sequence[Stage] = STAGES,
                   group_of: Callable[[Case], str] = lambda c: c.group) -> dict[int, float]:
    """id(case) -> its prediction from a fit that did not see its group (fitted stages only).

    Groups are `case.group` (a model projection, an attention shape, a kernel family) unless
    `group_of` says otherwise (e.g. the model a GEMM shape comes from). `profile` must already
    hold the fitted values of every stage (each refit starts from them).
    """
    held_out: dict[int, float] = {}
    for stage in stages:
        groups = sorted({group_of(c) for c in cases if c.stage == stage.name})
        for group in groups:
            train = [c for c in cases if not (c.stage == stage.name and group_of(c) == group)]
            refit = with_values(profile, fit_stage(stage, train, profile))
            for case in cases:
                if case.stage == stage.name and group_of(case) == group:
                    held_out[id(case)] = case.predict(refit)
    return held_out


# ---- stage 5: launch gaps from whole-step rows ------------------------------------------------------
STEP_MODELS = {"llama3_8b": "meta-llama/Llama-3.1-8B", "qwen3_32b": "Qwen/Qwen3-32B"}


@dataclass(frozen=True)
class Step:
    """A whole-model row (`hf` section): what tensor_cast.analyze is asked for it."""

    row: Row
    model: str
    batch_size: int
    query_len: int
    context_len: int
    layers: int
    cuda_graphs: str  # always (timed in a CUDA graph) | never (eager)

    @property
    def label(self) -> str:
        kind = "decode" if self.query_len == 1 else "prefill"
        where = f"B={self.batch_size} " + (f"ctx={self.context_len}" if kind == "decode" else f"S={self.query_len}")
        return f"{self.row.name.split('.')[0]} {self.layers}L {kind} {where} {'graph' if self.cuda_graphs == 'always' else 'eager'}"


def step_for(row: Row) -> Step | None:
    match = re.match(r"^(\w+)\.(prefill|decode)_(\d+)layers_(graph|eager)$", row.name)
    if row.section != "hf" or match is None or match.group(1) not in STEP_MODELS:
        return None
    p = row.params
    decode = match.group(2) == "decode"
    return Step(row=row, model=STEP_MODELS[match.group(1)], batch_size=int(p["B"]),
                query_len=1 if decode else int(p["S"]), context_len=int(p["L"]) if decode else 0,
                layers=int(match.group(3)), cuda_graphs="always" if match.group(4) == "graph" else "never")


def analyze_step(step: Step, profile: DeviceProfile, *, fuse: bool = False) -> Any:
    """tensor_cast's report for a whole-model row: HF modules run unfused (eager kernels)."""
    import tensor_cast

    return tensor_cast.analyze(step.model, device=profile, batch_size=step.batch_size, query_len=step.query_len,
                               context_len=step.context_len, num_hidden_layers=step.layers, fuse=fuse,
                               cuda_graphs=step.cuda_graphs)


@dataclass(frozen=True)
class LaunchGap:
    pair: str
    launches: int
    graph_us: float
    eager_us: float

    @property
    def per_kernel_us(self) -> float:
        return (self.eager_us - self.graph_us) / self.launches

    @property
    def host_bound(self) -> bool:
        """Eager far slower than the graph: the host (Python dispatch) is the bottleneck."""
        return self.eager_us > 1.2 * self.graph_us


def launch_gaps(rows: Sequence[Row], profile: DeviceProfile) -> list[LaunchGap]:
    steps = [s for s in (step_for(r) for r in rows) if s is not None]
    gaps = []
    for graph in (s for s in steps if s.cuda_graphs == "always"):
        for eager in (s for s in steps if s.cuda_graphs == "never"):
            if (eager.model, eager.layers, eager.batch_size, eager.query_len, eager.context_len) == (
                    graph.model, graph.layers, graph.batch_size, graph.query_len, graph.context_len):
                launches = sum(r.launches for r in analyze_step(graph, profile).ops)
                gaps.append(LaunchGap(graph.label.removesuffix(" graph"), launches, graph.row.median_us,
                                      eager.row.median_us))
    return gaps


def fit_launch_gap(gaps: Sequence[LaunchGap], graph_kernel_us: float) -> tuple[dict[str, float], str]:
    """Eager gap = graph floor + the mean extra per kernel of the GPU-bound pairs (never below 0)."""
    gpu_bound = [g for g in gaps if not g.host_bound]
    if not gpu_bound:
        return {}, ""
    extra = max(0.0, sum(g.per_kernel_us for g in gpu_bound) / len(gpu_bound))
    detail = "; ".join(f"{g.pair}: {g.eager_us:.0f} vs {g.graph_us:.0f} us over {g.launches} kernels "
                       f"= {g.per_kernel_us:+.2f} us/kernel" for g in gpu_bound)
    return ({"overhead.kernel_launch_us": round_sig(graph_kernel_us + extra, 3)},
            f"graph floor + mean eager-minus-graph extra of GPU-bound pairs ({detail})")


# ---- writing the profile --------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return repr(value)
    return repr(value)


def _sections(text: str) -> list[tuple[str, list[str]]]:
    """[(section name or '' for the top, its lines)], in file order."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in text.splitlines():
        match = re.match(r"^\[([^\]]+)\]", line.strip())
        if match:
            out.append((match.group(1).strip(), [line]))
        else:
            out[-1][1].append(line)
    return out


def update_profile_text(text: str, values: Mapping[str, float], sources: Mapping[str, str],
                        header: str = "", engine: str = "torch", overhead_too: bool = True) -> str:
    """`text` with its [overhead] (when `overhead_too`) and [efficiency.<engine>] sections replaced by
    `values` and the matching [sources] entries replaced; every other section (other engines'
    efficiency sections included) and source line is kept as it was. `values` / `sources` name
    efficiency keys `efficiency.<key>`; they are written under the engine's section."""
    section_name = f"efficiency.{engine}"
    overhead = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("overhead.")} if overhead_too else {}
    efficiency = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("efficiency.")}
    sources = {(f"{section_name}.{k.split('.', 1)[1]}" if k.startswith("efficiency.") else k): v
               for k, v in sources.items() if overhead_too or not k.startswith("overhead.")}
    sections = _sections(text)
    if any(name == "efficiency" for name, _ in sections):  # a flat (pre-engine) table is the torch section
        sections = [(("efficiency.torch", [ln.replace("[efficiency]", "[efficiency.torch]", 1) for ln in lines])
                     if name == "efficiency" else (name, lines)) for name, lines in sections]
        sections = [(name, [re.sub(r'^"efficiency\.(?!torch\b)', '"efficiency.torch.', ln) for ln in lines])
                    if name == "sources" else (name, lines) for name, lines in sections]
    old = {name: lines for name, lines in sections}
    tables = {"overhead": overhead, section_name: efficiency} if overhead_too else {section_name: efficiency}
    for name, table in tables.items():
        # keep the keys the fit did not produce (graph_max_tokens: an engine setting; vector: not measured)
        for line in old.get(name, [""])[1:]:
            match = re.match(r"^\s*(\w+)\s*=\s*([^#\s]+)", line)
            if match and match.group(1) not in table:
                text_value = match.group(2)
                table[match.group(1)] = float(text_value) if "." in text_value or "e" in text_value else int(text_value)

    def block(name: str, table: Mapping[str, Any]) -> list[str]:
        lines = [f"[{name}]" + (f"  # {header}" if header else "")]
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        return [*lines, ""]

    replaced = ("overhead", section_name) if overhead_too else (section_name,)
    stale = re.compile(r'^\s*"?(' + "|".join(re.escape(n) for n in replaced) + r')(\.\w+)?"?\s*=')
    out: list[str] = []
    written = set()
    for name, lines in sections:
        if name in replaced:
            out += block(name, dict(sorted(tables[name].items())) if name == section_name else tables[name])
            written.add(name)
        elif name == "sources":
            kept = [ln for ln in lines[1:] if not stale.match(ln) and ln.strip()]
            out += [lines[0], *kept]
            out += [f"{_toml_value(k)} = {_toml_value(v)}" for k, v in sorted(sources.items())]
            out.append("")
            written.add(name)
        elif name.startswith("efficiency.") and section_name not in written and section_name not in old:
            out += block(section_name, dict(sorted(efficiency.items())))  # a new engine section, beside the others
            written.add(section_name)
            out += lines
        else:
            out += lines
    for name in replaced:
        if name not in written:
            out += block(name, dict(sorted(tables[name].items())))
    if "sources" not in written:
        out += ["[sources]", *(f"{_toml_value(k)} = {_toml_value(v)}" for k, v in sorted(sources.items()))]
    return "\n".join(out).rstrip() + "\n"
