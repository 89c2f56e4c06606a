"""Answers from simulated rows: SLO filtering, the Pareto frontier, the best per device, cost,
the fewest GPUs for a request rate, and — when nothing meets the SLOs — which constraint binds.

Pure functions over `Row`s (a candidate and its metrics); nothing here simulates.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .metrics import SLO, Metrics
from .pareto import frontier
from .space import Candidate


@dataclass(frozen=True)
class Row:
    candidate: Candidate
    metrics: Metrics

    @property
    def tokens_per_s(self) -> float:
        """The whole deployment's output tokens per second (every replica)."""
        return self.metrics.output_tokens_per_s * self.candidate.replicas


def meeting(rows: Sequence[Row], slo: SLO) -> list[Row]:
    return [r for r in rows if slo.met(r.metrics)]


def pareto(rows: Sequence[Row]) -> list[Row]:
    """The rows no other row beats on both tokens/s per GPU and tokens/s per user."""
    points = [(r.metrics.tokens_per_s_per_user, r.metrics.tokens_per_s_per_gpu) for r in rows]
    return [rows[i] for i in frontier(points)]


def _rank(row: Row) -> tuple[float, float, str]:
    return (-row.metrics.tokens_per_s_per_gpu, row.metrics.mean_tpot_s, row.candidate.describe())


def per_device_key(candidate: Candidate) -> str:
    """The device, and the engine where one search compares engines ('h200 sglang')."""
    return f"{candidate.device} {candidate.engine}" if candidate.engine else candidate.device


def best_per_device(rows: Sequence[Row]) -> dict[str, Row]:
    """The best row per device (per device and engine where the search compares engines)."""
    out: dict[str, Row] = {}
    for row in sorted(rows, key=_rank):
        out.setdefault(per_device_key(row.candidate), row)
    return out


def cost_per_million_tokens(row: Row, prices: Mapping[str, float]) -> float | None:
    """Dollars per million output tokens at the device's price per GPU-hour (None: no price)."""
    price = prices.get(row.candidate.device)
    if price is None:
        return None
    return price * 1e6 / (row.metrics.tokens_per_s_per_gpu * 3600.0)


@dataclass(frozen=True)
class Sized:
    """A configuration scaled to a request rate: `units` copies of the simulated unit."""

    row: Row
    units: int
    gpus: int
    rate_per_unit: float


def fewest_gpus(rows: Sequence[Row], rate_per_s: float) -> list[Sized]:
    """Every row scaled to serve `rate_per_s` (units = ceil(rate / the unit's request rate)),
    fewest GPUs first; ties go to the higher throughput per GPU. Rows must already meet the SLOs."""
    sized = []
    for row in rows:
        per_unit = row.metrics.requests_per_s
        if per_unit <= 0:
            continue
        units = math.ceil(rate_per_s / per_unit - 1e-9)
        sized.append(Sized(row=row, units=units, gpus=units * row.candidate.unit_gpus, rate_per_unit=per_unit))
    return sorted(sized, key=lambda s: (s.gpus, *_rank(s.row)))


@dataclass(frozen=True)
class Binding:
    """Why nothing met the SLOs: the constraint(s) every configuration misses, and the closest ones."""

    constraint: str  # ttft | tpot | ttft+tpot | memory
    missed_by: dict[str, int]  # constraint -> configurations missing it
    closest: tuple[Row, ...]
    simulated: int = 0

    def describe(self, slo: SLO) -> str:
        if self.constraint == "memory":
            return "no configuration fits in memory: nothing was simulated (see the pruned list)"
        parts = [f"{k.upper()} missed by {v} of {self.simulated}" for k, v in sorted(self.missed_by.items())]
        return (f"no configuration meets the SLOs ({slo.stat}); binding: {self.constraint.upper()} "
                f"({'; '.join(parts)})")


def binding(rows: Sequence[Row], slo: SLO, closest: int = 5) -> Binding:
    if not rows:
        return Binding(constraint="memory", missed_by={}, closest=())
    missed: dict[str, int] = {}
    for row in rows:
        for name in slo.violations(row.metrics):
            missed[name] = missed.get(name, 0) + 1
    everywhere = [k for k, v in missed.items() if v == len(rows)]
    if len(everywhere) == 1:
        constraint = everywhere[0]
    else:  # no single constraint fails everywhere: the one each config misses by most, in the closest
        near = min(rows, key=lambda r: slo.miss(r.metrics))
        misses = slo.violations(near.metrics)
        constraint = "+".join(sorted(misses)) if len(misses) > 1 else next(iter(misses))
    order = sorted(rows, key=lambda r: (slo.miss(r.metrics), *_rank(r)))
    return Binding(constraint=constraint, missed_by=missed, closest=tuple(order[:closest]), simulated=len(rows))
