"""Load sweeps: one deployment simulated at several concurrencies or arrival rates.

Owns `simulate_sweep(model, concurrency=[...] | rate=[...], ...)` -> `ServingSweep`: the latency /
throughput curve of one deployment under load (TTFT and TPOT against tokens/s as the load grows),
the question a capacity planner asks before the search's "which deployment". Every level is one
`simulate(...)` call with the same arguments and seed (the trace and step costs are built once and
reused from the in-process cache); `ServingSweep.table()` is one row per level, `to_dict()` every
level's report. An open-loop level whose arrivals outpace the deployment (`ServingReport.overloaded`)
is marked: its latencies grow with the run's length rather than settling.

It must not simulate by itself: it calls `simulate` and tabulates.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tabulate import tabulate

from ..errors import InvalidArgumentError
from .goodput import objectives_text, parse_slo
from .report import ServingReport
from .workload import make_workload


@dataclass
class ServingSweep:
    kind: str  # concurrency | rate
    values: list[float]
    levels: list[ServingReport]

    def rows(self, slo: Any = None) -> list[dict[str, Any]]:
        """One record per level: the load and its headline numbers (seconds, tokens/s); with `slo` (goodput
        objectives, goodput.py) also the share of requests meeting them and their rate."""
        out = []
        for value, r in zip(self.values, self.levels, strict=True):
            extra: dict[str, Any] = {}
            if slo is not None:
                g = r.goodput(slo)
                extra = {"goodput_share": g.share, "goodput_requests_per_s": g.requests_per_s}
            out.append({self.kind: value, **extra, "mean_ttft_s": r.ttft.mean, "p90_ttft_s": r.ttft.p90,
                        "mean_tpot_s": r.tpot.mean, "p90_tpot_s": r.tpot.p90, "mean_e2e_s": r.e2e.mean,
                        "output_tokens_per_s": r.output_tokens_per_s,
                        "output_tokens_per_s_per_gpu": r.output_tokens_per_s_per_gpu,
                        "output_tokens_per_s_per_user": r.output_tokens_per_s_per_user,
                        "kv_peak_use": r.kv_peak_use, "preemptions": r.preemptions, "overloaded": r.overloaded})
        return out

    def table(self, slo: Any = None) -> str:
        ms = 1e3
        rows = self.rows(slo)
        body = [[f"{row[self.kind]:g}" + (" *" if row["overloaded"] else ""),
                 f"{row['mean_ttft_s'] * ms:.1f}", f"{row['p90_ttft_s'] * ms:.1f}", f"{row['mean_tpot_s'] * ms:.2f}",
                 f"{row['p90_tpot_s'] * ms:.2f}", f"{row['mean_e2e_s']:.2f}", f"{row['output_tokens_per_s']:.1f}",
                 f"{row['output_tokens_per_s_per_gpu']:.1f}", f"{row['output_tokens_per_s_per_user']:.1f}",
                 f"{row['kv_peak_use']:.1%}", row["preemptions"]] for row in rows]
        headers = ["clients" if self.kind == "concurrency" else "req/s", "TTFT ms", "p90", "TPOT ms", "p90", "E2E s",
                   "out tok/s", "/GPU", "/user", "KV peak", "preempt"]
        if slo is not None:
            for line, row in zip(body, rows, strict=True):
                line += [f"{row['goodput_share']:.1%}", f"{row['goodput_requests_per_s']:.3g}"]
            headers += ["in SLO", "goodput req/s"]
        return tabulate(body, headers=headers, disable_numparse=True)

    def summary(self, slo: Any = None) -> str:
        first = self.levels[0]
        lines = [f"{first.model} on {first.num_gpus}x {first.device}, {first.engine}, {first.deployment}",
                 f"sweep over {self.kind}: {', '.join(f'{v:g}' for v in self.values)}", self.table(slo)]
        if slo is not None:
            objectives = objectives_text(parse_slo(slo))
            lines.append(f"in SLO: requests meeting {objectives}; goodput: those per second (vLLM's --goodput)")
        if any(r.overloaded for r in self.levels):
            lines.append("* arrivals outpaced the deployment: TTFT and E2E grow with num_requests (see that level's "
                         "note)")
        notes: dict[str, list[str]] = {}
        for value, r in zip(self.values, self.levels, strict=True):
            for note in r.notes:
                notes.setdefault(note, []).append(f"{value:g}")
        for note, where in notes.items():
            scope = "" if len(where) == len(self.values) else f"[{self.kind} {', '.join(where)}] "
            lines.append(f"note: {scope}{note}")
        return "\n".join(lines)

    def to_dict(self, requests: bool = False, slo: Any = None) -> dict[str, Any]:
        return {"kind": self.kind, "values": self.values, "rows": self.rows(slo),
                "levels": [r.to_dict(requests, slo) for r in self.levels]}

    def to_json(self, requests: bool = False, slo: Any = None) -> str:
        return json.dumps(self.to_dict(requests, slo), sort_keys=True, indent=1)


def simulate_sweep(model: Any, *, concurrency: Sequence[int] | None = None, rate: Sequence[float] | None = None,
                   progress: Callable[[int, int], None] | None = None, **kwargs: Any) -> ServingSweep:
    """`simulate(model, ...)` at every level of `concurrency` (closed loop) or `rate` (Poisson), the other
    arguments shared (module docstring). `progress(done, total)` is called after each level."""
    from .api import simulate

    if (concurrency is None) == (rate is None):
        raise InvalidArgumentError("a sweep takes exactly one of concurrency=[...] or rate=[...]")
    if "trace" in kwargs and kwargs["trace"] is not None:
        raise InvalidArgumentError("a sweep varies concurrency or rate; a trace fixes its own arrivals (accepted: "
                                   "concurrency=[...] or rate=[...])")
    kind, given = ("concurrency", concurrency) if concurrency is not None else ("rate", rate)
    if isinstance(given, (str, bytes)) or not isinstance(given, Sequence) or not given:
        raise InvalidArgumentError(f"{kind} must be a non-empty list of levels, got {given!r}")
    values = list(given)
    if len(set(values)) != len(values):
        raise InvalidArgumentError(f"{kind} levels repeat: {values}; accepted: distinct levels")
    for value in values:  # every level's arrivals are valid before the first level is simulated
        make_workload(**{"concurrency": None, "rate": None, kind: value}, trace=None,
                      num_requests=kwargs.get("num_requests"), isl=kwargs.get("isl"), osl=kwargs.get("osl"),
                      seed=kwargs.get("seed", 0), range_ratio=kwargs.get("range_ratio", 0.0))
    levels = []
    for i, value in enumerate(values):
        level: dict[str, Any] = {kind: value}
        levels.append(simulate(model, **level, **kwargs))
        if progress is not None:
            progress(i + 1, len(values))
    return ServingSweep(kind, values, levels)
