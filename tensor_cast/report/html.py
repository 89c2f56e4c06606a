"""Self-contained HTML pages: one analysis's per-op report, and the pieces a search report reuses.

Owns `analysis_html(report) -> str` (`tensor-cast analyze --html`): the summary, time by op kind
(bars), the per-op table and the step timeline, all inline (SVG drawn here, CSS in the page; no
script, font or image is fetched when the page is viewed). `page`, `bars`, `timeline`, `table`
are the building blocks `tensor_cast/search/html.py` shares, so both reports look alike.
"""

from __future__ import annotations

import html
from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .report import Report

KIND_COLORS = {
    "gemm": "#4e79a7", "attention": "#f28e2b", "moe": "#e15759", "norm": "#76b7b2", "activation": "#59a14f",
    "elementwise": "#edc948", "embedding": "#b07aa1", "collective": "#ff9da7", "quant": "#9c755f",
    "memory": "#bab0ac", "other": "#7f7f7f",
}
CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1180px;
color:#222;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
pre{background:#f6f8fa;padding:10px;overflow-x:auto;font-size:12px;border-radius:6px}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}td,th{padding:3px 9px;border-bottom:1px solid #eee;
text-align:right}th{background:#f2f4f7;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
tr.hl td{background:#fff3cd}.muted{color:#666;font-size:12.5px}.legend span{display:inline-block;margin-right:12px}
.legend i{display:inline-block;width:10px;height:10px;margin-right:4px;vertical-align:-1px}
.scroll{max-height:460px;overflow-y:auto;border:1px solid #eee}
"""


def esc(value: Any) -> str:
    return html.escape(str(value))


def page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{esc(title)}</title>"
            f"<meta name=viewport content='width=device-width,initial-scale=1'><style>{CSS}</style></head>"
            f"<body>{body}</body></html>")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], highlight: int | None = None,
          scroll: bool = False) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join(f"<tr{' class=hl' if i == highlight else ''}>" + "".join(f"<td>{esc(c)}</td>" for c in row)
                   + "</tr>" for i, row in enumerate(rows))
    out = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f"<div class=scroll>{out}</div>" if scroll else out


def bars(items: Sequence[tuple[str, float, str]], unit: str = "ms", scale: float = 1e3, width: int = 720) -> str:
    """Horizontal bars: (label, value, color)."""
    if not items:
        return ""
    top = max(v for _, v, _ in items) or 1.0
    total = sum(v for _, v, _ in items) or 1.0
    row_h, label_w = 22, 150
    parts = [f"<svg width={width} height={row_h * len(items) + 6} role=img>"]
    for i, (label, value, color) in enumerate(items):
        y = i * row_h + 3
        w = (width - label_w - 170) * value / top
        parts.append(f"<text x=0 y={y + 14} font-size=12>{esc(label)}</text>"
                     f"<rect x={label_w} y={y} width={w:.1f} height={row_h - 6} fill='{color}'/>"
                     f"<text x={label_w + w + 6:.1f} y={y + 14} font-size=12>{value * scale:.3f} {unit} "
                     f"({100 * value / total:.1f}%)</text>")
    parts.append("</svg>")
    return "".join(parts)


def legend(kinds: Sequence[str]) -> str:
    return "<div class=legend>" + "".join(
        f"<span><i style='background:{KIND_COLORS.get(k, '#7f7f7f')}'></i>{esc(k)}</span>" for k in kinds) + "</div>"


def timeline(report: Report, width: int = 1100, max_layers: int = 200) -> str:
    """The step as one row per layer (prologue and epilogue rows too): each op a rectangle at its
    start time within the row, colored by kind; consecutive ops of a kind are merged."""
    groups: dict[Any, list[Any]] = defaultdict(list)
    for row in report.ops:
        groups[row.layer if row.layer is not None else row.phase].append(row)
    keys = list(groups)[: max_layers + 2]
    spans = {k: (float(groups[k][0].start_s), float(groups[k][-1].start_s) + float(groups[k][-1].time_s))
             for k in keys}
    longest = max((e - s for s, e in spans.values()), default=0.0) or 1.0
    row_h, label_w = 9, 70
    usable = width - label_w - 10
    parts = [f"<svg width={width} height={row_h * len(keys) + 24} role=img>"]
    for i, key in enumerate(keys):
        y = i * row_h
        start0 = spans[key][0]
        if i % max(1, len(keys) // 12) == 0 or not isinstance(key, int):
            parts.append(f"<text x=0 y={y + 8} font-size=9>{esc(key if not isinstance(key, int) else f'layer {key}')}</text>")
        merged: list[list[Any]] = []
        for op in groups[key]:
            s, t = float(op.start_s) - start0, float(op.time_s)
            if merged and merged[-1][2] == op.kind and abs(merged[-1][0] + merged[-1][1] - s) < 1e-12:
                merged[-1][1] += t
            else:
                merged.append([s, t, op.kind])
        for s, t, kind in merged:
            parts.append(f"<rect x={label_w + usable * s / longest:.1f} y={y} width={max(usable * t / longest, 0.3):.1f} "
                         f"height={row_h - 1} fill='{KIND_COLORS.get(kind, '#7f7f7f')}'/>")
    axis_y = row_h * len(keys) + 14
    parts.append(f"<text x={label_w} y={axis_y} font-size=10>0</text><text x={width - 90} y={axis_y} "
                 f"font-size=10>{longest * 1e3:.3f} ms</text></svg>")
    return "".join(parts)


def op_sections(report: Report, top: int = 40) -> str:
    """Time by kind (bars), the step timeline and the per-op table (top rows by time)."""
    by_kind: dict[str, float] = defaultdict(float)
    by_op: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
    for row in report.ops:
        by_kind[row.kind] += float(row.time_s)
        acc = by_op[(row.op, row.kind)]
        acc[0] += 1
        acc[1] += float(row.flops)
        acc[2] += float(row.bytes)
        acc[3] += float(row.time_s)
    total = sum(by_kind.values()) or 1.0
    kinds = sorted(by_kind, key=lambda k: -by_kind[k])
    ops = sorted(by_op.items(), key=lambda kv: -kv[1][3])[:top]
    rows = [(op, kind, int(v[0]), f"{v[1] / 1e9:,.2f}", f"{v[2] / 1e6:,.2f}", f"{v[3] * 1e6:,.1f}",
             f"{100 * v[3] / total:.1f}%") for (op, kind), v in ops]
    return (f"<h2>Time by op kind</h2>{bars([(k, by_kind[k], KIND_COLORS.get(k, '#7f7f7f')) for k in kinds])}"
            f"<h2>Step timeline</h2><p class=muted>One row per layer; each op at its start time in the layer, "
            f"colored by kind.</p>{legend(kinds)}{timeline(report)}"
            f"<h2>Per-op breakdown (top {len(rows)} by time)</h2>"
            + table(("op", "kind", "calls", "GFLOP", "MB", "time µs", "share"), rows, scroll=True))


def analysis_html(report: Report) -> str:
    title = f"tensor_cast: {report.model} on {report.device}"
    body = (f"<h1>{esc(title)}</h1><p class=muted>batch {report.batch_size}, query {report.query_len}, "
            f"context {report.context_len}</p><h2>Summary</h2><pre>{esc(report.summary())}</pre>"
            + op_sections(report))
    return page(title, body)
