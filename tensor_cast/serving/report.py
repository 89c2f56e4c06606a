"""`ServingReport`: what a simulated serving run measured, and its renderings.

Owns the metric definitions (the ones vLLM's `benchmark_serving` and genai-perf use):
TTFT = first token time − arrival; TPOT = (end-to-end − TTFT) / (output tokens − 1), per
request; ITL = the gap between successive token emissions of a sequence (one sample per decode
step per sequence); E2E = finish − arrival. Each has mean, p50, p90, p99 (numpy's linear
percentile). Throughput counts tokens over the run's makespan (first arrival to last finish):
per deployment, per GPU, and per user (1 / mean TPOT). Also KV-cache use (peak and
time-weighted mean fraction of the blocks), prefix-cache hits (prompt tokens found cached at first
admission), preemptions, where the step time goes (`time_split`, built by time_split.py on first
use), the per-request JSONL and a Chrome
trace of the steps (one event per step or fast-forwarded decode run, with its batch). An open-loop
run whose arrivals outpaced the deployment (`backlog` at the last arrival) is said in a note: its
latencies grow with the run's length.

It must not simulate; `to_json()` is deterministic (sorted keys, repr floats).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .goodput import Goodput, goodput
from .sim_result import SimResult, StepRecord
from .time_split import PhaseSplit
from .time_split import render as render_time_split
from .workload import Request

OPEN_LOOP = ("poisson", "trace")  # arrivals that do not wait for the server
# An open-loop run is overloaded when, at the last arrival, this share of its requests (and at least this
# many) has not had its first token: a stable queue does not grow with the run, an overloaded one holds
# about N (1 - served rate / offered rate) then.
BACKLOG_SHARE = 0.1
BACKLOG_MIN = 10


def backlog(records: list[RequestRecord]) -> int:
    """Requests without their first token at the time the last request arrived."""
    last = max(r.arrival_s for r in records)
    return sum(1 for r in records if r.arrival_s + r.ttft_s > last)


def outpaced(waiting: int, total: int) -> bool:
    """The overload rule: `waiting` of `total` requests left at the last arrival is a growing queue."""
    return waiting >= max(BACKLOG_MIN, BACKLOG_SHARE * total)


@dataclass(frozen=True)
class Stats:
    mean: float
    p50: float
    p90: float
    p99: float

    @classmethod
    def of(cls, values: Any, weights: Any = None) -> Stats:
        v = np.asarray(values, dtype=float)
        if v.size == 0:
            return cls(math.nan, math.nan, math.nan, math.nan)
        if weights is None:
            p = np.percentile(v, [50, 90, 99])
            return cls(float(v.mean()), float(p[0]), float(p[1]), float(p[2]))
        w = np.asarray(weights, dtype=float)
        order = np.argsort(v, kind="stable")
        v, w = v[order], w[order]
        cum = np.cumsum(w) / w.sum()
        q = [float(v[min(int(np.searchsorted(cum, x, side="left")), v.size - 1)]) for x in (0.5, 0.9, 0.99)]
        return cls(float(np.average(v, weights=w)), q[0], q[1], q[2])


@dataclass(frozen=True)
class RequestRecord:
    rid: int
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    ttft_s: float
    tpot_s: float
    e2e_s: float
    preemptions: int
    prefix_hit_tokens: int
    kv_transfer_s: float


@dataclass
class ServingReport:
    model: str
    device: str
    engine: str
    deployment: str
    num_gpus: int
    workload: dict[str, Any]
    requests: list[RequestRecord]
    ttft: Stats
    tpot: Stats
    itl: Stats
    e2e: Stats
    duration_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float
    kv_cache_blocks: int
    kv_cache_block_size: int
    kv_peak_use: float
    kv_mean_use: float
    preemptions: int
    steps: int
    notes: list[str] = field(default_factory=list)
    # where the step time goes (time_split.py), computed on first use: a few op-by-op evaluations of the
    # traces, which a search simulating hundreds of candidates should not pay for
    split_source: Callable[[], list[PhaseSplit]] | None = field(default=None, repr=False, compare=False)
    step_records: list[StepRecord] = field(default_factory=list, repr=False)

    @cached_property
    def time_split(self) -> list[PhaseSplit]:
        """Per pool and phase: its steps, their share of the step time, a typical step's kernels by kind."""
        return self.split_source() if self.split_source is not None else []

    # ---- the headline numbers (the API contract) -----------------------------------------
    @property
    def mean_ttft_s(self) -> float:
        return self.ttft.mean

    @property
    def mean_tpot_s(self) -> float:
        return self.tpot.mean

    @property
    def p90_ttft_s(self) -> float:
        return self.ttft.p90

    @property
    def p90_tpot_s(self) -> float:
        return self.tpot.p90

    @property
    def output_tokens_per_s_per_gpu(self) -> float:
        return self.output_tokens_per_s / self.num_gpus

    @property
    def total_tokens_per_s_per_gpu(self) -> float:
        return self.total_tokens_per_s / self.num_gpus

    @property
    def prefix_hit_tokens(self) -> int:
        """Prompt tokens found in the prefix cache at the requests' first admission (not computed)."""
        return sum(r.prefix_hit_tokens for r in self.requests)

    @property
    def prompt_tokens(self) -> int:
        return sum(r.prompt_tokens for r in self.requests)

    def goodput(self, slo: Any) -> Goodput:
        """Requests meeting every objective of `slo` ("ttft:300 tpot:50", milliseconds, as vLLM's benchmark
        `--goodput`; or {"ttft": 300}) and their rate over the run (goodput.py)."""
        return goodput(self, slo)

    @property
    def overloaded(self) -> bool:
        """An open loop (rate, trace) whose arrivals outpaced the deployment: at the last arrival a tenth of the
        requests (and at least BACKLOG_MIN) still waited for their first token (the note says so too)."""
        if self.workload.get("kind") not in OPEN_LOOP or not self.requests:
            return False
        return outpaced(backlog(self.requests), len(self.requests))

    @property
    def output_tokens_per_s_per_user(self) -> float:
        return 1.0 / self.tpot.mean if self.tpot.mean > 0 else math.nan

    @classmethod
    def build(cls, sim: SimResult, *, model: str, device: str, engine: str, deployment: str, num_gpus: int,
              workload: dict[str, Any], block_size: int, notes: list[str], warmup: int = 0,
              time_split: Callable[[], list[PhaseSplit]] | None = None) -> ServingReport:
        """`warmup`: the first requests sent are left out of the latency statistics (genai-perf's
        --warmup-request-count); they stay in `requests` and in the throughput."""
        records = [_record(r) for r in sim.requests]
        measured = [r for r in records if r.rid >= warmup] or records
        start = min(r.arrival_s for r in sim.requests)
        span = sim.duration_s - start
        if workload.get("kind") in OPEN_LOOP:
            waiting = backlog(records)
            if outpaced(waiting, len(records)):
                notes = [*notes, f"when the last request arrived, {waiting} of {len(records)} were still waiting for "
                                 "their first token: arrivals outpaced the deployment (it served "
                                 f"{len(records) / span:.3g} requests/s), so TTFT and E2E grow with the run's length "
                                 "(num_requests) rather than settling; lower the rate or add replicas"]
        out_tokens = sum(r.output for r in sim.requests)
        all_tokens = out_tokens + sum(r.prompt for r in sim.requests)
        tpots = [r.tpot_s for r in measured if r.output_tokens > 1]
        return cls(
            model=model, device=device, engine=engine, deployment=deployment, num_gpus=num_gpus, workload=workload,
            requests=records, ttft=Stats.of([r.ttft_s for r in measured]), tpot=Stats.of(tpots),
            itl=Stats.of(sim.itl_durations, sim.itl_weights), e2e=Stats.of([r.e2e_s for r in measured]),
            duration_s=span, output_tokens_per_s=out_tokens / span if span > 0 else math.nan,
            total_tokens_per_s=all_tokens / span if span > 0 else math.nan, kv_cache_blocks=sim.kv_blocks,
            kv_cache_block_size=block_size, kv_peak_use=sim.kv_peak_use, kv_mean_use=sim.kv_mean_use,
            preemptions=sim.preemptions, steps=sim.num_steps, notes=notes, step_records=sim.steps,
            split_source=time_split)

    # ---- renderings ------------------------------------------------------------------------
    def to_dict(self, requests: bool = False, slo: Any = None) -> dict[str, Any]:
        """`slo`: goodput objectives (see `goodput`); with them the dict carries the goodput too."""
        out: dict[str, Any] = {
            "model": self.model, "device": self.device, "engine": self.engine, "deployment": self.deployment,
            "num_gpus": self.num_gpus, "workload": self.workload, "num_requests": len(self.requests),
            "ttft_s": asdict(self.ttft), "tpot_s": asdict(self.tpot), "itl_s": asdict(self.itl),
            "e2e_s": asdict(self.e2e), "duration_s": self.duration_s,
            "output_tokens_per_s": self.output_tokens_per_s, "total_tokens_per_s": self.total_tokens_per_s,
            "output_tokens_per_s_per_gpu": self.output_tokens_per_s_per_gpu,
            "total_tokens_per_s_per_gpu": self.total_tokens_per_s_per_gpu,
            "output_tokens_per_s_per_user": self.output_tokens_per_s_per_user,
            "kv_cache": {"blocks": self.kv_cache_blocks, "block_size": self.kv_cache_block_size,
                         "peak_use": self.kv_peak_use, "mean_use": self.kv_mean_use},
            "preemptions": self.preemptions, "steps": self.steps, "notes": self.notes,
            "prefix_cache": {"hit_tokens": self.prefix_hit_tokens, "prompt_tokens": self.prompt_tokens},
            "time_split": [asdict(s) for s in self.time_split],
        }
        if slo is not None:
            g = self.goodput(slo)
            out["goodput"] = {"slo_ms": g.slo_ms, "good": g.good, "total": g.total, "share": g.share,
                              "requests_per_s": g.requests_per_s}
        if requests:
            out["requests"] = [asdict(r) for r in self.requests]
        return out

    def to_json(self, requests: bool = False, slo: Any = None) -> str:
        return json.dumps(self.to_dict(requests, slo), sort_keys=True, indent=1)

    def requests_jsonl(self) -> str:
        return "".join(json.dumps(asdict(r), sort_keys=True) + "\n" for r in self.requests)

    def chrome_trace(self) -> dict[str, Any]:
        """Chrome/Perfetto trace: one complete event per step (or fast-forwarded decode run) per worker."""
        workers = sorted({s.worker for s in self.step_records})
        tid = {w: i for i, w in enumerate(workers)}
        events: list[dict[str, Any]] = [{"ph": "M", "name": "thread_name", "pid": 0, "tid": tid[w],
                                          "args": {"name": w}} for w in workers]
        for s in self.step_records:
            name = f"prefill {s.prefill_tokens} + decode {s.decode_seqs}" if s.prefill_tokens else \
                f"decode {s.decode_seqs}" + (f" x{s.steps} steps" if s.steps > 1 else "")
            events.append({"ph": "X", "name": name, "pid": 0, "tid": tid[s.worker], "ts": s.start_s * 1e6,
                           "dur": s.duration_s * 1e6,
                           "args": {"steps": s.steps, "prefill_tokens": s.prefill_tokens,
                                    "decode_seqs": s.decode_seqs, "running": s.running}})
        return {"traceEvents": events, "displayTimeUnit": "ms"}

    def summary(self, slo: Any = None) -> str:
        ms = 1e3
        lines = [
            f"{self.model} on {self.num_gpus}x {self.device}, {self.engine}, {self.deployment}",
            f"workload: {json.dumps(self.workload, sort_keys=True)}; {len(self.requests)} requests in "
            f"{self.duration_s:.2f} s, {self.steps} steps",
            f"{'':6} {'mean':>9} {'p50':>9} {'p90':>9} {'p99':>9}  (ms)",
        ]
        for name, s in (("TTFT", self.ttft), ("TPOT", self.tpot), ("ITL", self.itl), ("E2E", self.e2e)):
            lines.append(f"{name:6} {s.mean * ms:9.2f} {s.p50 * ms:9.2f} {s.p90 * ms:9.2f} {s.p99 * ms:9.2f}")
        lines += [
            f"output tokens/s: {self.output_tokens_per_s:.1f} ({self.output_tokens_per_s_per_gpu:.1f} per GPU, "
            f"{self.output_tokens_per_s_per_user:.1f} per user); total tokens/s: {self.total_tokens_per_s:.1f}",
            f"KV cache: {self.kv_cache_blocks} blocks x {self.kv_cache_block_size} tokens, peak use "
            f"{self.kv_peak_use:.1%}, mean {self.kv_mean_use:.1%}; preemptions: {self.preemptions}"
            + (f"; prefix cache: {self.prefix_hit_tokens} of {self.prompt_tokens} prompt tokens hit "
               f"({self.prefix_hit_tokens / self.prompt_tokens:.1%})" if self.prefix_hit_tokens else ""),
        ]
        if slo is not None:
            lines.append(self.goodput(slo).describe())
        lines += [f"time: {line}" for line in render_time_split(self.time_split)]
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


def _record(r: Request) -> RequestRecord:
    ttft = r.first_token_s - r.arrival_s
    e2e = r.finish_s - r.arrival_s
    tpot = (e2e - ttft) / (r.output - 1) if r.output > 1 else 0.0
    return RequestRecord(rid=r.rid, arrival_s=r.arrival_s, prompt_tokens=r.prompt, output_tokens=r.output,
                         ttft_s=ttft, tpot_s=tpot, e2e_s=e2e, preemptions=r.preemptions,
                         prefix_hit_tokens=r.prefix_hit, kv_transfer_s=r.transfer_s)
