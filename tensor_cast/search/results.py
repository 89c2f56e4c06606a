"""`SearchResult`: what a search or recommendation found, as data, tables, JSON and CSV.

Holds every simulated row, the rows meeting the SLOs, the Pareto frontier, the best per device
(or, for `recommend`, the fewest GPUs per device), the chosen configurations with their launch
commands, what was pruned by memory and why, what was screened out without simulating and why
(`Screened`), and — when nothing meets the SLOs — the binding constraint with the closest
configurations.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from typing import Any

from .launch import Launch
from .metrics import SLO
from .select import Binding, Row, Sized, cost_per_million_tokens
from .space import Candidate, Variant

CSV_FIELDS = ("device", "engine", "gpus", "config", "tp", "pp", "dp", "ep", "quant", "kv_cache_dtype", "replicas",
              "concurrency", "mean_ttft_ms", "p90_ttft_ms", "mean_tpot_ms", "p90_tpot_ms", "tokens_per_s",
              "tokens_per_s_per_gpu", "tokens_per_s_per_user", "slo_share", "meets_slo", "on_frontier", "usd_per_m_tokens",
              "status")  # status: "simulated", or the reason a configuration was screened out unsimulated


@dataclass(frozen=True)
class FitInfo:
    device: str
    variant: Variant
    max_batch: int  # the largest batch an instance holds at context ISL + OSL (0: pruned)
    weights_bytes: float
    reason: str = ""  # why it was pruned ("" when it fits)


@dataclass(frozen=True)
class Screened:
    """A concurrency level not simulated: a lower level of the same instance, `below`, already
    missed the SLOs (by these factors over target), and latency only rises with concurrency."""

    below: int
    missed: dict[str, float]  # "ttft" / "tpot" -> measured / target (> 1)

    def reason(self) -> str:
        over = ", ".join(f"{k.upper()} {v:.2f}x its target" for k, v in sorted(self.missed.items()))
        return f"not simulated: concurrency {self.below} already misses the SLOs ({over}); latency rises with concurrency"


@dataclass
class SearchResult:
    model: str
    engine: str
    isl: int
    osl: int
    range_ratio: float
    slo: SLO
    devices: tuple[str, ...]
    gpus: tuple[int, ...]
    prices: dict[str, float]
    rate: float | None
    fits: list[FitInfo]
    rows: list[Row]
    meeting: list[Row]
    frontier: list[Row]  # of the rows meeting the SLOs
    frontier_all: list[Row]  # of every simulated row
    per_device: dict[str, Any]  # device (and engine, when compared) -> best Row / fewest-GPU Sized (recommend)
    chosen: list[Row]
    launches: list[list[Launch]]
    accuracy: list[str] = field(default_factory=list)  # one per chosen row: the measured accuracy of similar runs
    sized: list[Sized] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    binding: Binding | None = None
    screened: list[tuple[Candidate, Screened]] = field(default_factory=list)  # configurations not simulated

    # ---- data ------------------------------------------------------------------------------
    def cost(self, row: Row) -> float | None:
        return cost_per_million_tokens(row, self.prices)

    def _candidate_dict(self, c: Candidate) -> dict[str, Any]:
        lay = c.variant.layout
        return {
            "device": c.device, "engine": c.engine or self.engine, "gpus": c.gpus, "config": c.describe(), "tp": lay.tp, "pp": lay.pp, "dp": lay.dp,
            "ep": lay.ep, "quant": c.variant.quant or "checkpoint", "kv_cache_dtype": c.variant.kv_cache_dtype or "auto",
            "replicas": c.replicas, "concurrency": c.concurrency,
        }

    def row_dict(self, row: Row) -> dict[str, Any]:
        c, m = row.candidate, row.metrics
        cost = self.cost(row)
        return {
            **self._candidate_dict(c),
            "mean_ttft_ms": m.mean_ttft_s * 1e3, "p90_ttft_ms": m.p90_ttft_s * 1e3,
            "mean_tpot_ms": m.mean_tpot_s * 1e3, "p90_tpot_ms": m.p90_tpot_s * 1e3,
            "tokens_per_s": row.tokens_per_s, "tokens_per_s_per_gpu": m.tokens_per_s_per_gpu,
            "tokens_per_s_per_user": m.tokens_per_s_per_user, "slo_share": m.joint_share, "meets_slo": self.slo.met(m),
            "on_frontier": any(row is f for f in self.frontier), "usd_per_m_tokens": cost, "status": "simulated",
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model, "engine": self.engine, "isl": self.isl, "osl": self.osl,
            "range_ratio": self.range_ratio,
            "slo": {"ttft_s": self.slo.ttft_s, "tpot_s": self.slo.tpot_s, "stat": self.slo.stat,
                    "attainment": self.slo.attainment if self.slo.stat == "attainment" else None},
            "devices": list(self.devices), "gpus": list(self.gpus), "prices_usd_per_gpu_hour": self.prices,
            "rate_per_s": self.rate,
            "simulated": len(self.rows), "meeting_slo": len(self.meeting),
            "screened": [{"device": c.device, "gpus": c.gpus, "config": c.describe(), "concurrency": c.concurrency,
                          "reason": s.reason()} for c, s in self.screened],
            "pruned": [{"device": f.device, "config": f.variant.describe(), "reason": f.reason}
                       for f in self.fits if f.reason],
            "frontier": [self.row_dict(r) for r in self.frontier],
            "best_per_device": {d: self.row_dict(v if isinstance(v, Row) else v.row) for d, v in self.per_device.items()},
            "recommended": [
                {**self.row_dict(r), "launch": [{"role": x.role, "instances": x.instances, "argv": list(x.argv),
                                                 "yaml": x.yaml, "notes": list(x.notes)} for x in ls],
                 "measured_accuracy": a}
                for r, ls, a in zip(self.chosen, self.launches, self.accuracy, strict=True)],
            "sized": [{"config": s.row.candidate.describe(), "device": s.row.candidate.device, "units": s.units,
                       "gpus": s.gpus, "requests_per_s_per_unit": s.rate_per_unit} for s in self.sized],
            "binding": None if self.binding is None else {
                "constraint": self.binding.constraint, "missed_by": self.binding.missed_by,
                "closest": [self.row_dict(r) for r in self.binding.closest]},
            "failures": self.failures,
            "rows": [self.row_dict(r) for r in self.rows],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True)

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS)
        writer.writeheader()
        for row in self.rows:
            writer.writerow(self.row_dict(row))
        for candidate, screened in self.screened:  # latency columns empty: never simulated
            writer.writerow({**self._candidate_dict(candidate), "meets_slo": False, "on_frontier": False,
                             "status": screened.reason()})
        return buffer.getvalue()

    # ---- text ------------------------------------------------------------------------------
    def _table(self, rows: list[Row]) -> str:
        from tabulate import tabulate

        attainment = self.slo.stat == "attainment"
        shown = "p90" if attainment else self.slo.stat  # attainment judges shares; the table shows the p90
        head = ("device", "GPUs", "configuration", "conc.", "TTFT ms", "TPOT ms", "tok/s/GPU", "tok/s/user",
                "$/M tok") + (("in SLO",) if attainment else ())
        body = []
        for r in rows:
            d = self.row_dict(r)
            cost = d["usd_per_m_tokens"]
            body.append((d["device"], d["gpus"], d["config"], d["concurrency"],
                         f"{d[f'{shown}_ttft_ms']:.0f}", f"{d[f'{shown}_tpot_ms']:.1f}",
                         f"{d['tokens_per_s_per_gpu']:.0f}", f"{d['tokens_per_s_per_user']:.1f}",
                         "" if cost is None else f"{cost:.3f}") + ((f"{d['slo_share']:.1%}",) if attainment else ()))
        return tabulate(body, headers=head, disable_numparse=True)

    def summary(self) -> str:
        slo = ", ".join(f"{k} ≤ {v * 1e3:g} ms" for k, v in (("TTFT", self.slo.ttft_s), ("TPOT", self.slo.tpot_s))
                        if v is not None) or "no SLO"
        pruned = sum(1 for f in self.fits if f.reason)
        spread = f" (each ±{self.range_ratio:.0%})" if self.range_ratio else " (fixed lengths)"
        lines = [f"{self.model} on {', '.join(self.devices)} ({self.engine}), ISL {self.isl} / OSL {self.osl}{spread}, "
                 f"{slo} ({self._stat()}): {len(self.rows)} configurations simulated, {len(self.meeting)} meet the "
                 f"SLOs; {pruned} of {len(self.fits)} device x layout variants pruned by memory"
                 + (f"; {len(self.screened)} configurations screened out unsimulated (each above a concurrency "
                    "level of the same instance that already misses the SLOs; latency rises with concurrency)"
                    if self.screened else "")]
        if self.rate is not None and self.sized:
            best = self.sized[0]
            lines.append(f"\nFewest GPUs for {self.rate:g} requests/s: {best.gpus} x {best.row.candidate.device} "
                         f"({best.units} x {best.row.candidate.variant.describe()} at concurrency "
                         f"{best.row.candidate.concurrency}, {best.rate_per_unit:.2f} req/s each)")
            lines.append("\nPer device:")
            lines.append(self._sized_table())
        if self.binding is not None:
            lines.append("\n" + self.binding.describe(self.slo))
            if self.binding.closest:
                lines.append("closest configurations:")
                lines.append(self._table(list(self.binding.closest)))
        elif self.rate is None:
            lines.append("\nBest per device (SLOs met, highest tokens/s per GPU):")
            lines.append(self._table(list(self.per_device.values())))
            lines.append("\nPareto frontier (SLOs met; tokens/s per GPU vs tokens/s per user):")
            lines.append(self._table(self.frontier))
        for row, ls, accuracy in zip(self.chosen, self.launches, self.accuracy, strict=True):
            lines.append(f"\nLaunch ({row.candidate.device}, {row.candidate.describe()}):")
            lines.append(f"# {accuracy}")
            for x in ls:
                lines.append(f"# {x.role}: {x.instances} instance(s)" + "".join(f"\n# note: {n}" for n in x.notes))
                lines.append(x.shell())
        return "\n".join(lines)

    def _stat(self) -> str:
        if self.slo.stat == "attainment":
            return f"attainment: {self.slo.attainment:.0%} of requests within both, table times p90"
        return self.slo.stat

    def _sized_table(self) -> str:
        from tabulate import tabulate

        body = [(s.row.candidate.device, s.gpus, s.units, s.row.candidate.describe(), s.row.candidate.concurrency,
                 f"{s.rate_per_unit:.2f}", f"{s.row.metrics.tokens_per_s_per_gpu:.0f}")
                for s in self.per_device.values()]
        return tabulate(body, headers=("device", "GPUs", "instances", "instance", "conc.", "req/s each",
                                       "tok/s/GPU"), disable_numparse=True)
