"""JSON form of a report: every total, memory figure, deployment/fit/pipeline view and per-op row.

Owns `report_to_dict(report)` (what `Report.to_dict()` / `to_json()` return). Symbolic values
become strings of their sympy expressions; numbers stay numbers.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import sympy

if TYPE_CHECKING:
    from .report import Report


def plain(value: Any) -> Any:
    """A JSON-ready value: numeric sympy -> float, symbolic sympy -> its expression's text."""
    if isinstance(value, sympy.Basic):
        return float(value) if value.is_number else str(value)
    return value


def report_to_dict(report: Report) -> dict[str, Any]:
    memory = {k: plain(v) for k, v in asdict(report.memory).items()}
    deployment = report.context.deployment
    extra: dict[str, Any] = {"kv_cache_by_kind": {k: plain(v) for k, v in report.kv_cache_by_kind.items()}}
    if deployment is not None:
        extra["deployment"] = {"description": deployment.describe(), "world_size": deployment.world_size,
                               **{k: getattr(deployment, k) for k in (
                                   "tp", "ep", "dp", "pp", "quant", "kv_cache_dtype", "nodes", "gpus_per_node")},
                               # the attention-DP ranks' MoE exchange; None where the MoE layers exchange no tokens
                               "moe_exchange": deployment.token_exchange}
        if deployment.request.keep_unquantized:  # the modules kept in the model dtype, when any are
            extra["deployment"]["keep_unquantized"] = list(deployment.request.keep_unquantized)
    if not report.symbolic:
        fit = report.fit
        extra["fit"] = {k: plain(v) for k, v in asdict(fit).items()}
        if report.pipeline is not None:
            extra["pipeline"] = {k: plain(v) for k, v in asdict(report.pipeline).items() if k != "stages"}
            extra["pipeline"]["stages"] = [{k: plain(v) for k, v in asdict(st).items()}
                                           for st in report.pipeline.stages]
    return {**extra,
        "model": report.model,
        "architecture": report.context.architecture,
        "device": report.device,
        "engine": {"requested": report.engine_requested, "efficiency_section": report.engine},
        "point": report.point,
        "symbolic": report.symbolic,
        "options": dict(report.context.options),
        "notes": list(report.context.notes),
        "warnings": list(report.warnings),
        "totals": {
            "time_s": plain(report.total_time_s),
            "flops": plain(report.total_flops),
            "bytes": plain(report.total_bytes),
            "comm_bytes": plain(report.total_comm_bytes),
            "comm_time_s": plain(report.comm_time_s),
            "overlapped_time_s": plain(report.overlapped_time_s),
            "ep_comm_time_s": plain(report.ep_comm_time_s),
            "ep_overlapped_time_s": plain(report.ep_overlapped_time_s),
            "tokens_per_s": plain(report.tokens_per_s),
            "flops_by_precision": {k: plain(v) for k, v in report.flops_by_precision.items()},
        },
        "memory": memory,
        "speculative": None if report.speculative is None else {
            **asdict(report.speculative), "rates": list(report.speculative.rates),
            "accepted_tokens_per_step": report.accepted_tokens_per_step,
            "time_per_output_token_s": plain(report.time_per_output_token_s),
            "output_tokens_per_s": plain(report.output_tokens_per_s)},
        "num_parameters": report.num_parameters,
        "active_parameters": report.active_parameters,
        "ops": [{k: plain(v) for k, v in asdict(row).items()} for row in report.ops],
        "free_ops": [asdict(f) for f in report.free_ops],
    }
