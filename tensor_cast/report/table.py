"""Text rendering of a report: the aggregated op table and the totals summary (tabulate).

`by`: `op` (op and kind), `kind`, `layer`, `module` (module path with the layer index folded to
`*`), or `node` (every row). Columns: calls, FLOPs, bytes, time, share of the step, and the
bound of the rows that take most of the group's time.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tabulate import tabulate

from ..errors import InvalidArgumentError, choices
from ..sizes import pretty
from ..units import gib, seconds

if TYPE_CHECKING:
    from .report import OpRow, Report

GROUPINGS: dict[str, tuple[tuple[str, ...], Callable[[OpRow], tuple[Any, ...]]]] = {
    "op": (("op", "kind"), lambda r: (r.op, r.kind)),
    "kind": (("kind",), lambda r: (r.kind,)),
    "layer": (("layer",), lambda r: (r.layer if r.layer is not None else r.phase,)),
    "module": (("module",), lambda r: (re.sub(r"\.\d+(\.|$)", r".*\1", r.module),)),
    "node": (("name", "op", "kind", "shapes"), lambda r: (r.name, r.op, r.kind, r.shapes)),
}


def si(value: float, unit: str) -> str:
    for factor, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.2f} {prefix}{unit}"
    return f"{value:.0f} {unit}"


def render_table(report: Report, by: str = "op", top: int | None = None) -> str:
    if by not in GROUPINGS:
        raise InvalidArgumentError(f"unknown grouping {by!r}; accepted: {choices(GROUPINGS)}")
    if top is not None and (isinstance(top, bool) or not isinstance(top, int) or top < 1):
        raise InvalidArgumentError(f"top must be an integer >= 1 (rows to show) or None (all), got {top!r}")
    headers, key_of = GROUPINGS[by]
    if report.symbolic:
        text = [(r.name, r.op, r.kind, str(r.flops), str(r.bytes), str(r.time_s)) for r in report.ops]
        return tabulate(text[:top] if top else text, headers=("name", "op", "kind", "flops", "bytes", "time_s"))
    groups: dict[tuple[Any, ...], list[OpRow]] = defaultdict(list)
    for row in report.ops:
        groups[key_of(row)].append(row)
    total = float(report.total_time_s) or 1.0
    table = []
    for key, rows in groups.items():
        time = sum(r.time_s for r in rows)
        by_bound: dict[str, float] = defaultdict(float)
        for r in rows:
            by_bound[r.bound] += r.time_s
        table.append((*key, len(rows), si(sum(r.flops for r in rows), "FLOP"), si(sum(r.bytes for r in rows), "B"),
                      seconds(time), f"{100 * time / total:.1f}%", max(by_bound, key=by_bound.__getitem__), time))
    if by != "layer":
        table.sort(key=lambda t: -t[-1])
    shown = table[:top] if top else table
    return tabulate([t[:-1] for t in shown],
                    headers=(*headers, "calls", "FLOPs", "bytes", "time", "share", "bound"), disable_numparse=True)


def render_summary(report: Report) -> str:
    if report.symbolic:
        return (f"{report.model} on {report.device} (symbolic in B, S, C)\n"
                f"time_s = {report.total_time_s}\nflops = {report.total_flops}")
    p, m = report.point or {}, report.memory
    lines = [
        ("model", f"{report.model} ({report.context.architecture})"),
        ("device", report.device),
        ("engine", _engine_text(report)),
        ("step", f"batch {p['batch_size']} x {p['query_len']} new tokens, {p['context_len']} cached tokens/sequence"),
        ("time", seconds(report.total_time_s)),
        ("throughput", f"{report.tokens_per_s:,.0f} tokens/s"),
        ("FLOPs", si(report.total_flops, "FLOP")),
        ("bytes moved", si(report.total_bytes, "B")),
        ("parameters", f"{pretty(report.num_parameters)} total, {pretty(report.active_parameters)} active per token"),
        ("weights per GPU", gib(m.weights_bytes)),
        ("KV cache per GPU", gib(m.kv_cache_bytes)),
        ("activation peak", gib(m.activation_peak_bytes)),
    ]
    if report.total_comm_bytes:
        lines.insert(7, ("communication", si(report.total_comm_bytes, "B")))
    lines += _deployment_lines(report)
    spec = report.speculative
    if spec is not None:
        lines.insert(5, ("MTP", f"{spec.draft_tokens} draft token(s)/step, {spec.describe()}: "
                                f"{report.accepted_tokens_per_step:.3f} tokens/step/sequence"))
        lines.insert(6, ("per output token", f"{seconds(report.time_per_output_token_s)} "
                                             f"({report.output_tokens_per_s:,.0f} output tokens/s, decode)"))
    fallbacks = sorted({f for r in report.ops for f in r.fallbacks})
    if fallbacks:
        lines.append(("precision fallbacks", ", ".join(fallbacks)))
    for note in report.context.notes:
        lines.append(("note", note))
    for warning in report.warnings:
        lines.append(("warning", warning))
    return tabulate(lines, tablefmt="plain", disable_numparse=True)


def _engine_text(report: Report) -> str:
    if report.engine == report.engine_requested:
        return f"{report.engine} (efficiency section [efficiency.{report.engine}])"
    return f"{report.engine_requested} (efficiency section [efficiency.{report.engine}]: see note)"


def _deployment_lines(report: Report) -> list[tuple[str, str]]:
    """Deployment, communication, per-GPU memory and fit, pipeline stages (tensor_cast/deployment/)."""
    deployment = report.context.deployment
    lines: list[tuple[str, str]] = []
    if deployment is None:
        return lines
    lines.insert(0, ("deployment", deployment.describe()))
    if report.comm_time_s:
        share = 100 * float(report.comm_time_s) / float(report.total_time_s)
        lines.append(("comm time", f"{seconds(report.comm_time_s)} ({share:.1f}% of the step, not overlapped); "
                                   f"with ideal compute/comm overlap the step would take "
                                   f"{seconds(report.overlapped_time_s)}"))
    if report.ep_comm_time_s:
        hidden = float(report.total_time_s) - float(report.ep_overlapped_time_s)
        overlap = (f"overlapped with the shared experts the step would take {seconds(report.ep_overlapped_time_s)}"
                   if hidden > 0 else "no shared experts to overlap it with")
        label, what = (("EP all_to_all", "dispatch + combine") if deployment.token_exchange == "all_to_all" else
                       ("MoE all-gather", "all-gather + reduce-scatter"))
        lines.append((label, f"{seconds(report.ep_comm_time_s)} ({what}); {overlap}"))
    by_kind = report.kv_cache_by_kind
    if len(by_kind) > 1:
        lines.append(("KV cache by kind", ", ".join(f"{k} {gib(v)}" for k, v in by_kind.items())))
    reserve = report.context.capacity_bytes * (1 - deployment.memory_utilization)
    lines.append(("memory per GPU", f"{gib(report.per_gpu_memory_bytes)} + reserve {gib(reserve)} of "
                                    f"{gib(report.context.capacity_bytes)}"))
    lines.append(("fit", report.fit.describe()))
    if report.pipeline is not None:
        lines.append(("pipeline", report.pipeline.describe()))
    return lines
