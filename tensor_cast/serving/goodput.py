"""Goodput: the requests per second that met every latency objective, as vLLM's benchmark counts it.

vLLM's `benchmark_serving` / `vllm bench serve` `--goodput ttft:300 tpot:50` takes "KEY:VALUE" pairs
whose keys are request-level metrics ("ttft", "tpot", "e2el") and whose values are milliseconds
(its help text; the definition is DistServe's, arxiv.org/abs/2401.09670): a request is good when
each of its metrics is at most its objective, and goodput is the good requests over the run's
duration. Here a request's metrics are its `RequestRecord`'s (TTFT, TPOT = (E2E - TTFT) /
(output - 1), 0 for one output token, E2E) and the duration is the report's makespan, the one its
throughputs divide by; every request counts, as in the throughputs.

Owns `parse_slo` (the pairs, or a mapping, checked: unknown metric or a value that is not a
positive number is a one-line error naming the accepted ones) and `Goodput` / `goodput(report, slo)`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError

METRICS = {"ttft": "ttft_s", "tpot": "tpot_s", "e2el": "e2e_s"}  # vLLM's key -> RequestRecord field


@dataclass(frozen=True)
class Goodput:
    slo_ms: dict[str, float]  # metric -> objective in milliseconds
    good: int  # requests meeting every objective
    total: int
    requests_per_s: float

    @property
    def share(self) -> float:
        return self.good / self.total if self.total else math.nan

    def describe(self) -> str:
        slo = objectives_text(self.slo_ms)
        return (f"goodput: {self.good} of {self.total} requests ({self.share:.1%}) met {slo}: "
                f"{self.requests_per_s:.3g} requests/s")


def objectives_text(slo_ms: Mapping[str, float]) -> str:
    """'TTFT <= 300 ms and TPOT <= 50 ms'."""
    return " and ".join(f"{k.upper()} <= {v:g} ms" for k, v in slo_ms.items())


def parse_slo(given: Sequence[str] | Mapping[str, Any] | str) -> dict[str, float]:
    """`["ttft:300", "tpot:50"]`, `"ttft:300 tpot:50"` or `{"ttft": 300, "tpot": 50}` -> {metric: ms}."""
    if isinstance(given, str):
        given = given.split()
    pairs: list[tuple[str, Any]] = []
    if isinstance(given, Mapping):
        pairs = list(given.items())
    else:
        for item in given:
            key, sep, value = str(item).partition(":")
            if not sep:
                raise InvalidArgumentError(f"goodput objective {item!r} is not KEY:VALUE (e.g. ttft:300, milliseconds)")
            pairs.append((key.strip(), value.strip()))
    if not pairs:
        raise InvalidArgumentError(f"goodput needs at least one objective; accepted keys: {', '.join(METRICS)}")
    out: dict[str, float] = {}
    for key, value in pairs:
        if key not in METRICS:
            raise InvalidArgumentError(f"unknown goodput metric {key!r}; accepted: {', '.join(METRICS)} (milliseconds)")
        try:
            ms = float(value)
        except (TypeError, ValueError):
            ms = math.nan
        if isinstance(value, bool) or not math.isfinite(ms) or ms <= 0:
            raise InvalidArgumentError(f"goodput objective {key}:{value} must be a number of milliseconds > 0")
        if key in out:
            raise InvalidArgumentError(f"goodput objective {key!r} given twice")
        out[key] = ms
    return out


def goodput(report: Any, slo: Sequence[str] | Mapping[str, Any] | str) -> Goodput:
    """The requests of `report` (a ServingReport) meeting every objective of `slo`, and their rate."""
    slo_ms = parse_slo(slo)
    limits = [(METRICS[k], v / 1e3) for k, v in slo_ms.items()]
    good = sum(1 for r in report.requests if all(getattr(r, field) <= limit for field, limit in limits))
    span = report.duration_s
    return Goodput(slo_ms, good, len(report.requests), good / span if span > 0 else math.nan)
