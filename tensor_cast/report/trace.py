"""Chrome / Perfetto trace of a report: one complete event per op, laid out back to back.

Open the JSON in chrome://tracing or ui.perfetto.dev. Each event carries the op's kind, shapes,
FLOPs, bytes and bound in `args`; layers are shown as enclosing events on a second track.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError

if TYPE_CHECKING:
    from .report import Report


def chrome_trace(report: Report) -> dict[str, Any]:
    if report.symbolic:
        raise InvalidArgumentError("a trace needs a concrete point: call report.evaluate(...) first")
    events: list[dict[str, Any]] = [
        {"name": "process_name", "ph": "M", "pid": 0, "args": {"name": f"{report.model} on {report.device}"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 0, "args": {"name": "ops"}},
        {"name": "thread_name", "ph": "M", "pid": 0, "tid": 1, "args": {"name": "layers"}},
    ]
    layer_span: dict[int, list[float]] = {}
    for row in report.ops:
        start_us, dur_us = row.start_s * 1e6, row.time_s * 1e6
        events.append({
            "name": row.op, "cat": row.kind, "ph": "X", "pid": 0, "tid": 0, "ts": start_us, "dur": dur_us,
            "args": {"node": row.name, "module": row.module, "shapes": row.shapes, "dtype": row.dtype,
                     "flops": row.flops, "bytes": row.bytes, "bound": row.bound},
        })
        if row.layer is not None:
            span = layer_span.setdefault(row.layer, [start_us, start_us + dur_us])
            span[1] = start_us + dur_us
    for layer, (start, end) in sorted(layer_span.items()):
        events.append({"name": f"layer {layer}", "cat": "layer", "ph": "X", "pid": 0, "tid": 1, "ts": start,
                       "dur": end - start})
    return {"traceEvents": events, "displayTimeUnit": "ns"}
