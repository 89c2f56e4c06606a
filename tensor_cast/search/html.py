"""The search report as one self-contained HTML page (`tensor-cast search --html report.html`).

The Pareto chart (inline SVG: every simulated configuration, the SLO-meeting ones filled, the
frontier joined), the best configuration per device, the frontier table, the launch commands,
and the chosen configuration's per-op breakdown and step timeline (its decode step analyzed at
its concurrency and mean context) drawn as `tensor-cast analyze --html` draws them.
"""

from __future__ import annotations

import math
from typing import Any

from ..report.html import esc, op_sections, page, table
from .results import SearchResult
from .select import Row

DEVICE_COLORS = ("#4e79a7", "#e15759", "#59a14f", "#f28e2b", "#b07aa1", "#76b7b2", "#9c755f", "#edc948")


def pareto_svg(result: SearchResult, width: int = 760, height: int = 420) -> str:
    rows = result.rows
    if not rows:
        return "<p>nothing simulated</p>"
    xs = [r.metrics.tokens_per_s_per_user for r in rows]
    ys = [r.metrics.tokens_per_s_per_gpu for r in rows]
    x_step, y_step = _step(max(xs)), _step(max(ys))
    x_max, y_max = x_step * (int(max(xs) / x_step) + 1), y_step * (int(max(ys) / y_step) + 1)
    left, bottom, right, top = 64, 44, 16, 14
    pw, ph = width - left - right, height - top - bottom

    def sx(x: float) -> float:
        return left + pw * x / x_max

    def sy(y: float) -> float:
        return top + ph * (1 - y / y_max)

    color = {d: DEVICE_COLORS[i % len(DEVICE_COLORS)] for i, d in enumerate(result.devices)}
    parts = [f"<svg width={width} height={height} role=img><rect x={left} y={top} width={pw} height={ph} "
             f"fill=none stroke='#ccc'/>"]
    for i in range(round(x_max / x_step) + 1):
        x = i * x_step
        parts.append(f"<text x={sx(x):.0f} y={height - 26} font-size=10 text-anchor=middle>{x:,.0f}</text>")
    for i in range(round(y_max / y_step) + 1):
        y = i * y_step
        parts.append(f"<line x1={left} x2={left + pw} y1={sy(y):.1f} y2={sy(y):.1f} stroke='#eee'/>"
                     f"<text x={left - 6} y={sy(y) + 3:.0f} font-size=10 text-anchor=end>{y:,.0f}</text>")
    parts.append(f"<text x={left + pw / 2} y={height - 6} font-size=12 text-anchor=middle>output tokens/s per "
                 f"user (1 / TPOT)</text><text x=14 y={top + ph / 2} font-size=12 text-anchor=middle "
                 f"transform='rotate(-90 14 {top + ph / 2})'>output tokens/s per GPU</text>")
    for r in rows:
        ok = result.slo.met(r.metrics)
        c = color[r.candidate.device]
        parts.append(f"<circle cx={sx(r.metrics.tokens_per_s_per_user):.1f} cy={sy(r.metrics.tokens_per_s_per_gpu):.1f} "
                     f"r=3.2 fill='{c if ok else 'none'}' stroke='{c}' stroke-opacity=0.7>"
                     f"<title>{esc(r.candidate.device)} {esc(r.candidate.describe())} c={r.candidate.concurrency}"
                     f"</title></circle>")
    line = " ".join(f"{sx(r.metrics.tokens_per_s_per_user):.1f},{sy(r.metrics.tokens_per_s_per_gpu):.1f}"
                    for r in result.frontier)
    if line:
        parts.append(f"<polyline points='{line}' fill=none stroke='#222' stroke-width=1.5/>")
    parts.append("</svg>")
    key = "".join(f"<span><i style='background:{color[d]};border-radius:5px'></i>{esc(d)}</span>"
                  for d in result.devices)
    return ("".join(parts) + f"<div class=legend>{key}<span class=muted>filled: meets the SLOs; hollow: misses "
            f"them; line: Pareto frontier of the SLO-meeting configurations</span></div>")


def _step(top: float) -> float:
    """A round tick step giving about five ticks up to `top`."""
    raw = max(top, 1e-9) / 5
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _rows(result: SearchResult, rows: list[Row]) -> list[tuple[Any, ...]]:
    out = []
    for r in rows:
        d = result.row_dict(r)
        cost = d["usd_per_m_tokens"]
        out.append((d["device"], d["gpus"], d["config"], d["concurrency"], f"{d['mean_ttft_ms']:.0f}",
                    f"{d['mean_tpot_ms']:.1f}", f"{d['tokens_per_s_per_gpu']:,.0f}",
                    f"{d['tokens_per_s_per_user']:.1f}", "" if cost is None else f"{cost:.3f}"))
    return out


HEAD = ("device", "GPUs", "configuration", "conc.", "TTFT ms", "TPOT ms", "tok/s/GPU", "tok/s/user", "$/M tok")


def chosen_report(result: SearchResult, model: Any) -> Any:
    """The chosen configuration's decode step: its concurrency per instance, mean context."""
    from ..api import analyze

    if not result.chosen:
        return None
    row = result.chosen[0]
    return analyze(model, device=row.candidate.device, batch_size=row.candidate.concurrency, query_len=1,
                   context_len=result.isl + result.osl // 2, engine=row.candidate.engine or result.engine,
                   **row.candidate.variant.options())


def search_html(result: SearchResult, model: Any) -> str:
    title = f"tensor_cast search: {result.model} ({result.engine})"
    slo = ", ".join(f"{k} ≤ {v * 1e3:g} ms" for k, v in (("TTFT", result.slo.ttft_s), ("TPOT", result.slo.tpot_s))
                    if v is not None) or "no SLO"
    body = [f"<h1>{esc(title)}</h1><p class=muted>{esc(', '.join(result.devices))}; GPUs "
            f"{esc(', '.join(map(str, result.gpus)))}; ISL {result.isl} / OSL {result.osl}; {esc(slo)} "
            f"({esc(result.slo.stat)}); {len(result.rows)} configurations simulated, {len(result.meeting)} meet "
            f"the SLOs</p>", "<h2>Pareto frontier</h2>", pareto_svg(result)]
    if result.binding is not None:
        body.append(f"<p><b>{esc(result.binding.describe(result.slo))}</b></p><h2>Closest configurations</h2>"
                    + table(HEAD, _rows(result, list(result.binding.closest))))
    else:
        per_device = [v if isinstance(v, Row) else v.row for v in result.per_device.values()]
        body.append("<h2>Best per device</h2>" + table(HEAD, _rows(result, per_device), highlight=0))
        body.append("<h2>Frontier (SLOs met)</h2>" + table(HEAD, _rows(result, result.frontier), scroll=True))
    for row, launches, accuracy in zip(result.chosen, result.launches, result.accuracy, strict=True):
        text = f"# {accuracy}\n\n" + "\n\n".join(
            f"# {x.role}: {x.instances} instance(s)\n" + x.shell() for x in launches)
        body.append(f"<h2>Launch: {esc(row.candidate.device)} {esc(row.candidate.describe())}</h2><pre>{esc(text)}</pre>")
    if result.screened:
        body.append(f"<h2>Screened out, not simulated ({len(result.screened)})</h2>" + table(
            ("device", "configuration", "conc.", "why"),
            [(c.device, c.describe(), c.concurrency, s.reason()) for c, s in result.screened], scroll=True))
    report = chosen_report(result, model)
    if report is not None:
        row = result.chosen[0]
        body.append(f"<h2>Chosen configuration: {esc(row.candidate.device)} {esc(row.candidate.describe())}, "
                    f"decode step at concurrency {row.candidate.concurrency}</h2><pre>{esc(report.summary())}</pre>")
        body.append(op_sections(report, top=30))
    return page(title, "".join(body))


