"""Does a deployment fit in device memory, how large a batch or context would, and what else would.

Owns `fit(report) -> Fit` for a report at a concrete point. Per GPU (the heaviest pipeline stage):

    required = weights (sharded, quantized) + KV cache / recurrent state + activation peak
    usable   = capacity × memory_utilization   (the rest is the framework reserve: CUDA context,
               NCCL buffers, allocator fragmentation; 0.9 is vLLM's `gpu_memory_utilization`)

The maximum batch (at this query/context length) and maximum context (at this batch) come from
the report's *symbolic* memory: the expression in B, S, C is lambdified once and searched over
integers (memory grows monotonically with B and C). The batch is the global one: DP replicas each
hold ceil(batch / dp) sequences.

When the deployment does not fit, `suggestions` lists what would: attention DP + expert
parallelism on the same GPUs (MoE models whose attention cache every TP rank replicates, i.e.
MLA: each GPU then holds only its replica's sequences), 2x / 4x as many of this GPU, and the same
GPU count on built-in devices with more memory. Those are estimates, labelled as such: under
attention DP the non-expert weights are replicated (x tp) and the MLA cache divided (/ tp); more
GPUs divide the weights per GPU by the factor and keep the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sympy

from ..errors import InvalidArgumentError
from ..sizes import B, C, S
from ..units import gib

if TYPE_CHECKING:
    from ..report.report import Report

SEARCH_LIMIT = 2**30


@dataclass(frozen=True)
class Fit:
    fits: bool
    required_bytes: float
    usable_bytes: float
    capacity_bytes: float
    max_batch_size: int  # global batch that fits at this query/context length (0: none)
    max_context_len: int | None  # context that fits at this batch (None: none; see context_capped)
    context_capped: bool  # the search stopped at the model's max_position_embeddings
    suggestions: tuple[str, ...] = field(default=())

    def describe(self) -> str:

        head = (f"fits: {gib(self.required_bytes)} of {gib(self.usable_bytes)} usable" if self.fits else
                f"DOES NOT FIT: needs {gib(self.required_bytes)} per GPU, {gib(self.usable_bytes)} usable")
        limits = f"max batch {self.max_batch_size:,} at this length"
        if self.max_context_len is not None:
            limits += f", max context {self.max_context_len:,}{'+' if self.context_capped else ''} at this batch"
        text = f"{head}; {limits}"
        if self.suggestions:
            text += "; would fit: " + ", ".join(self.suggestions)
        return text


def memory_function(report: Report) -> Any:
    """Per-GPU required bytes as a numeric function of (per-replica batch, query len, context len)."""
    symbolic = report.symbolic_view()
    expr = symbolic.per_gpu_memory_bytes
    return sympy.lambdify((B, S, C), expr, modules="math")


def _largest(ok: Any, start: int, limit: int) -> int:
    """Largest n in [start, limit] with ok(n), for ok true up to some n and false after; start - 1
    when even `start` fails."""
    if not ok(start):
        return start - 1
    lo, probe = start, max(2 * start, start + 1)
    while probe <= limit and ok(probe):
        lo, probe = probe, 2 * probe
    hi = min(probe, limit + 1)  # fails, or is past the limit
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def fit(report: Report) -> Fit:
    if report.point is None:
        raise InvalidArgumentError("fit needs a concrete point: call report.evaluate(batch_size=..., query_len=..., "
                                   "context_len=...) first")
    deployment = report.context.deployment
    dp = deployment.dp if deployment is not None else 1
    utilization = deployment.memory_utilization if deployment is not None else 0.9
    capacity = report.context.capacity_bytes
    usable = capacity * utilization
    required = float(report.per_gpu_memory_bytes)
    f = memory_function(report)
    s, c = report.point["query_len"], report.point["context_len"]
    local_batch = _largest(lambda b: f(b, s, c) <= usable, 1, SEARCH_LIMIT)
    local_now = -(-report.point["batch_size"] // dp)
    cap = report.context.max_position_embeddings or SEARCH_LIMIT
    max_context = _largest(lambda ctx: f(local_now, s, ctx) <= usable, 0, max(cap - s, 0))
    suggestions = () if required <= usable else tuple(_suggestions(report, required, utilization))
    return Fit(fits=required <= usable, required_bytes=required, usable_bytes=usable, capacity_bytes=capacity,
               max_batch_size=max(local_batch, 0) * dp, max_context_len=max_context if max_context >= 0 else None,
               context_capped=max_context >= cap - s, suggestions=suggestions)


def _attention_dp_estimate(report: Report, required: float) -> tuple[int, float] | None:
    """(tp, estimated bytes per GPU) with attention DP + EP over the same tp GPUs, for a MoE model
    under pure TP whose MLA cache each rank replicates; None when that layout would not help."""
    deployment = report.context.deployment
    if deployment is None or deployment.tp <= 1 or deployment.dp > 1 or deployment.pp > 1:
        return None
    params = report.context.params
    routed = sum(p.nbytes for p in params if p.active_fraction < 1)
    if not routed:
        return None
    tp = deployment.tp
    replicated_cache = sum(float(v) for k, v in report.kv_cache_by_kind.items() if k == "mla")
    if not replicated_cache:
        return None
    weights = float(report.memory.weights_bytes)
    dense = weights - routed  # sharded over tp now, replicated under attention DP
    estimate = required + dense * (tp - 1) - replicated_cache * (tp - 1) / tp
    return tp, estimate


def _suggestions(report: Report, required: float, utilization: float, limit: int = 4) -> list[str]:
    """Attention DP + EP on these GPUs, then more of this GPU (the smallest multiple that fits),
    then other devices at this count."""
    from ..backends.device import builtin_profiles

    deployment = report.context.deployment
    world = deployment.world_size if deployment is not None else 1
    weights = float(report.memory.weights_bytes)
    rest = required - weights
    profiles = {p.name: p for p in builtin_profiles().values()}
    options = []
    same_gpus = _attention_dp_estimate(report, required)
    if same_gpus is not None and same_gpus[1] <= report.context.capacity_bytes * utilization:
        n, estimate = same_gpus
        options.append(f"attention DP + EP on these {n} GPUs (--tp 1 --dp {n} --ep {n}; est. {estimate / 1e9:.0f} GB/GPU)")
    for factor in (2, 4, 8):
        estimate = weights / factor + rest
        if report.device in profiles and estimate <= profiles[report.device].memory_bytes * utilization:
            options.append(_option(profiles[report.device], world * factor, estimate))
            break
    for profile in sorted(profiles.values(), key=lambda p: (p.memory_capacity_gib, p.name)):
        if profile.name != report.device and required <= profile.memory_bytes * utilization:
            options.append(_option(profile, world, required))
    return options[:limit]


def _option(profile: Any, world: int, estimate: float) -> str:
    interconnect = getattr(profile, "interconnect", None)
    gpn = interconnect.gpus_per_node if interconnect is not None else world
    nodes = -(-world // gpn)
    where = f" ({nodes} nodes)" if nodes > 1 else ""
    return f"{world} x {profile.name}{where} (est. {estimate / 1e9:.0f} GB/GPU)"
