"""Request streams: closed loop, Poisson arrivals, or a JSONL trace.

Owns `Request` (one request's lengths, arrival and, once simulated, its timeline), `Workload`
(how requests arrive) and `read_trace(path)`. A closed loop has `concurrency` clients that all
send their first request at t = 0 and their next one the moment the previous completes, as
benchmark tools (vLLM `benchmark_serving --max-concurrency`, genai-perf, AIPerf) do, until
`num_requests` have been sent; a Poisson stream draws exponential gaps of mean 1/`rate` from a
seeded generator; a trace gives each request explicitly, one JSON object per line:

    {"arrival_s": 0.25, "prompt_tokens": 1024, "output_tokens": 256, "prefix_id": "sys-a", "prefix_tokens": 512}

(`prefix_id` / `prefix_tokens` optional: requests with the same prefix id share their first
`prefix_tokens` prompt tokens, the whole prompt when omitted, for prefix caching).

It must not schedule or cost anything.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError

TRACE_FIELDS = ("arrival_s", "prompt_tokens", "output_tokens", "prefix_id", "prefix_tokens")


class Request:
    """One request and its simulated timeline (mutable; the scheduler advances it)."""

    __slots__ = (
        "arrival_s",
        "blocks",
        "cached_blocks",
        "computed",
        "evicted_after",
        "finish_s",
        "first_token_s",
        "generated",
        "output",
        "preemptions",
        "prefill_target",
        "prefix_hit",
        "prefix_id",
        "prefix_tokens",
        "prompt",
        "rank",
        "rid",
        "transfer_s",
    )

    def __init__(self, rid: int, arrival_s: float, prompt: int, output: int, prefix_id: str | None = None,
                 prefix_tokens: int = 0) -> None:
        self.rid = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.prefix_id = prefix_id
        self.prefix_tokens = prefix_tokens
        self.computed = 0.0  # tokens whose KV is in the cache
        self.generated = 0.0  # output tokens emitted (fractional with speculative decoding: expected value)
        self.prefill_target = prompt  # tokens to (re)compute before the next token is sampled
        self.blocks = 0
        self.cached_blocks = 0  # preempted with prefix caching: its full blocks left in the cache (scheduler.py)
        self.evicted_after = 0  # ... which allocations start to evict once the rank has allocated this many blocks
        self.first_token_s = math.nan
        self.finish_s = math.nan
        self.preemptions = 0
        self.rank = 0
        self.prefix_hit = 0
        self.transfer_s = 0.0

    @property
    def in_prefill(self) -> bool:
        return self.computed < self.prefill_target

    @property
    def done(self) -> bool:
        return self.generated >= self.output - 1e-9


@dataclass(frozen=True)
class TraceEntry:
    arrival_s: float
    prompt_tokens: int
    output_tokens: int
    prefix_id: str | None = None
    prefix_tokens: int | None = None


@dataclass(frozen=True)
class Workload:
    """How requests arrive: exactly one of concurrency (closed loop), rate (Poisson), trace."""

    kind: str  # closed | poisson | trace
    num_requests: int
    isl: int = 0
    osl: int = 0
    concurrency: int = 0
    rate: float = 0.0
    trace: tuple[TraceEntry, ...] = ()
    seed: int = 0
    range_ratio: float = 0.0  # lengths uniform in [L(1 - r), L(1 + r)] (vLLM benchmark --random-range-ratio)

    def lengths(self) -> list[tuple[int, int]]:
        """(prompt, output) of request i, i = 0..num_requests-1 (seeded; fixed when range_ratio = 0)."""
        if self.kind == "trace":
            return [(e.prompt_tokens, e.output_tokens) for e in self.trace]
        if not self.range_ratio:
            return [(self.isl, self.osl)] * self.num_requests
        rng = np.random.default_rng([self.seed, 1])
        p_lo, p_hi = length_range(self.isl, self.range_ratio, 1)
        o_lo, o_hi = length_range(self.osl, self.range_ratio, 2)
        isl = rng.integers(p_lo, p_hi + 1, self.num_requests)
        osl = rng.integers(o_lo, o_hi + 1, self.num_requests)
        return [(int(a), int(b)) for a, b in zip(isl, osl)]

    def initial_arrivals(self) -> list[tuple[float, int, int, str | None, int]]:
        """(arrival time, prompt, output, prefix id, prefix tokens) known before the run starts."""
        lengths = self.lengths()
        if self.kind == "closed":
            return [(0.0, p, o, None, 0) for p, o in lengths[:min(self.concurrency, self.num_requests)]]
        if self.kind == "poisson":
            gaps = np.random.default_rng(self.seed).exponential(1.0 / self.rate, self.num_requests)
            times = np.cumsum(gaps) - gaps[0]  # the first request arrives at t = 0
            return [(float(t), p, o, None, 0) for t, (p, o) in zip(times, lengths)]
        return [(e.arrival_s, e.prompt_tokens, e.output_tokens, e.prefix_id,
                 e.prompt_tokens if e.prefix_tokens is None else e.prefix_tokens) for e in self.trace]


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def check_range_ratio(value: Any) -> float:
    """A length spread r: lengths uniform in [L(1 - r), L(1 + r)], r in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise InvalidArgumentError(f"range_ratio must be a fraction in [0, 1), got {value!r}")
    return float(value)


def length_range(length: int, range_ratio: float, least: int) -> tuple[int, int]:
    """The lengths `Workload.lengths` draws around `length`, both ends included: [L(1 - r), L(1 + r)]
    rounded, at least `least`."""
    return max(least, round(length * (1 - range_ratio))), round(length * (1 + range_ratio))


def longest_request(isl: int, osl: int, range_ratio: float) -> int:
    """Prompt + output tokens of the longest request `Workload.lengths` can draw around isl / osl."""
    return length_range(isl, range_ratio, 1)[1] + length_range(osl, range_ratio, 2)[1]


def make_workload(*, concurrency: Any, rate: Any, trace: Any, num_requests: Any, isl: Any, osl: Any,
                  seed: int = 0, range_ratio: float = 0.0) -> Workload:
    """Validate the arrival arguments (exactly one of concurrency, rate, trace)."""
    given = [name for name, v in (("concurrency", concurrency), ("rate", rate), ("trace", trace)) if v is not None]
    if len(given) != 1:
        raise InvalidArgumentError(f"give exactly one of concurrency, rate, trace (got {given or 'none'})")
    if trace is not None:
        entries = read_trace(trace) if isinstance(trace, (str, Path)) else tuple(trace)
        if num_requests is not None:
            entries = entries[:_positive_int("num_requests", num_requests)]
        return Workload(kind="trace", num_requests=len(entries), trace=entries, seed=seed)
    if isl is None or osl is None:
        raise InvalidArgumentError("isl and osl (prompt and output tokens per request) are required "
                                   "with concurrency or rate")
    isl, osl = _positive_int("isl", isl), _positive_int("osl", osl)
    range_ratio = check_range_ratio(range_ratio)
    if concurrency is not None:
        concurrency = _positive_int("concurrency", concurrency)
        count = _positive_int("num_requests", num_requests) if num_requests is not None else 10 * concurrency
        return Workload(kind="closed", num_requests=count, isl=isl, osl=osl, concurrency=concurrency, seed=seed,
                        range_ratio=float(range_ratio))
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not math.isfinite(rate) or rate <= 0:
        raise InvalidArgumentError(f"rate must be a number of requests per second > 0, got {rate!r}")
    count = _positive_int("num_requests", num_requests) if num_requests is not None else 1000
    return Workload(kind="poisson", num_requests=count, isl=isl, osl=osl, rate=float(rate), seed=seed,
                    range_ratio=float(range_ratio))


def read_trace(path: str | Path) -> tuple[TraceEntry, ...]:
    """Parse a JSONL trace; a bad line raises naming its number and the accepted fields."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise InvalidArgumentError(f"cannot read trace {str(path)!r}: {exc.strerror}") from None
    entries: list[TraceEntry] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        entries.append(_entry(line, f"{path}:{number}"))
    if not entries:
        raise InvalidArgumentError(f"trace {str(path)!r} has no requests (one JSON object per line, fields "
                                   f"{', '.join(TRACE_FIELDS)})")
    entries.sort(key=lambda e: e.arrival_s)
    return tuple(entries)


def _entry(line: str, where: str) -> TraceEntry:
    accepted = "fields: arrival_s (s >= 0), prompt_tokens, output_tokens (ints >= 1), optional prefix_id, prefix_tokens"
    try:
        data = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"trace line {where} is not JSON ({exc.msg}); {accepted}") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError(f"trace line {where} is not a JSON object; {accepted}")
    unknown = sorted(set(data) - set(TRACE_FIELDS))
    missing = [k for k in TRACE_FIELDS[:3] if k not in data]
    if unknown or missing:
        raise InvalidArgumentError(f"trace line {where}: unknown {unknown} / missing {missing}; {accepted}")
    arrival = data["arrival_s"]
    ints = [data["prompt_tokens"], data["output_tokens"]]
    if (isinstance(arrival, bool) or not isinstance(arrival, (int, float)) or not math.isfinite(arrival) or arrival < 0
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in ints)):
        raise InvalidArgumentError(f"trace line {where} has a bad value ({line.strip()[:120]}); {accepted}")
    prefix_tokens = data.get("prefix_tokens")
    if prefix_tokens is not None and (isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int)
                                      or not 0 <= prefix_tokens <= ints[0]):
        raise InvalidArgumentError(f"trace line {where}: prefix_tokens must be an int in [0, prompt_tokens]; {accepted}")
    prefix_id = data.get("prefix_id")
    return TraceEntry(float(arrival), ints[0], ints[1], None if prefix_id is None else str(prefix_id), prefix_tokens)
