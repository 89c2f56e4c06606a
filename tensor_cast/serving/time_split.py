"""Where a serving run's time goes: its steps split by phase, and one typical step's kernels by kind.

Owns `PhaseTotals` (what the simulator adds up per pool while it runs: the summed duration and
count of the steps that carry prompt tokens and of the decode-only steps, and the sequences the
decode-only steps decode) and `split_time`, which turns those totals into `PhaseSplit`s: per pool
and phase, its steps, their share of the pool's step time, and a typical step of that phase costed
op by op from the pool's own symbolic trace (`Report.evaluate`, the same costs `analyze` gives),
its kernel time grouped by op kind — what answers "which ops dominate" for a deployment under load.

The typical steps, per pool (numbers of one rank, as `analyze` costs one GPU):
- decode: the decode-only steps' mean batch per rank (sequences decoded per step, averaged over
  those steps), each with 1 + MTP drafts new tokens and the decode tokens' mean context. That mean
  is exact for the requests served: a request of p prompt and o output tokens decodes its o tokens
  over contexts p, p + 1, ..., p + o - 1 (mean p + (o - 1) / 2), and the run's mean weights each
  request by its o.
- prompt: one mean prompt alone — its tokens not found in the prefix cache as new tokens, the ones
  found as context. An engine mixes prompt chunks with decodes (chunked prefill); the prompt alone
  is the part of those steps that is the prompt's.

The kernel times are the step's GPU kernels only (`analyze`'s total): the engine's host time per
step (engines.py, "Overheads") and CUDA-graph padding are in the simulated steps, not in the
kernel split. With pipeline parallelism the split sums every stage's kernels (the whole model).

It must not simulate; it reads the totals, the requests and the traces it is given.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TOP_KINDS = 5  # kinds named in the summary line; the rest are summed as "other"


@dataclass
class PhaseTotals:
    """One pool's steps, added up as the simulator ends them (a fast-forwarded run adds its k steps)."""

    ranks: int = 1  # attention-DP ranks per worker: the decode batch per rank is the worker's / ranks
    prompt_s: float = 0.0  # steps that carry prompt tokens (alone or with decodes)
    prompt_steps: int = 0
    decode_s: float = 0.0  # decode-only steps
    decode_steps: int = 0
    decode_seq_steps: float = 0.0  # sum over decode-only steps of the sequences each decodes (all ranks)

    def add(self, duration_s: float, steps: int, prefill_tokens: int, decode_seqs: int) -> None:
        if prefill_tokens:
            self.prompt_s += duration_s
            self.prompt_steps += steps
        else:
            self.decode_s += duration_s
            self.decode_steps += steps
            self.decode_seq_steps += decode_seqs * steps


@dataclass(frozen=True)
class KernelSplit:
    """A typical step of one rank, costed op by op: its kernels' time by op kind (seconds, largest first)."""

    batch_size: int  # sequences per rank
    query_len: int  # new tokens per sequence
    context_len: int  # cached tokens per sequence
    kernel_s: float
    kinds: tuple[tuple[str, float], ...]
    ranks: int = 1  # attention-DP ranks stepping together, each with this batch (the MoE sees all of theirs)
    stages: int = 1  # pipeline stages whose kernels are summed


@dataclass(frozen=True)
class PhaseSplit:
    pool: str  # agg | prefill | decode
    phase: str  # prompt (steps carrying prompt tokens) | decode (decode-only steps)
    steps: int
    step_s: float  # the steps' summed duration over the run (each worker's own)
    share: float  # of the pool's step time
    typical: KernelSplit


def decode_context(requests: Iterable[Any]) -> float:
    """Mean context of the run's decode tokens: sum of o (p + (o - 1) / 2) over sum of o (module docstring)."""
    tokens = weighted = 0.0
    for r in requests:
        tokens += r.output
        weighted += r.output * (r.prompt + (r.output - 1) / 2)
    return weighted / tokens if tokens else 0.0


def kernel_split(sym: Any, batch_size: int, query_len: int, context_len: int, ranks: int = 1) -> KernelSplit:
    """One rank's step at (batch, query, context) from the symbolic trace `sym`, its op times summed by
    kind; `ranks`: attention-DP ranks stepping together (each rank of `sym`'s dp holds `batch_size`)."""
    report = sym.evaluate(batch_size=batch_size * max(1, sym.dp), query_len=query_len, context_len=context_len)
    kinds: dict[str, float] = defaultdict(float)
    for row in report.ops:
        kinds[row.kind] += float(row.time_s)
    ordered = tuple(sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])))
    return KernelSplit(batch_size, query_len, context_len, float(report.total_time_s), ordered, ranks,
                       sym.context.deployment.pp)


def split_time(totals: Mapping[str, PhaseTotals], traces: Mapping[str, Any], requests: list[Any],
               decode_tokens: int) -> list[PhaseSplit]:
    """Per pool (agg, or prefill then decode) and phase with steps: the split (module docstring).
    `traces`: each pool's symbolic report; `decode_tokens`: new tokens per decode step (1 + MTP drafts)."""
    out = []
    prompt = sum(r.prompt - r.prefix_hit for r in requests) / len(requests)
    cached = sum(r.prefix_hit for r in requests) / len(requests)
    context = decode_context(requests)
    for pool, t in totals.items():
        whole = t.prompt_s + t.decode_s
        if whole <= 0:
            continue
        if t.prompt_steps:
            typical = kernel_split(traces[pool], 1, max(1, round(prompt)), round(cached), t.ranks)
            out.append(PhaseSplit(pool, "prompt", t.prompt_steps, t.prompt_s, t.prompt_s / whole, typical))
        if t.decode_steps:
            batch = max(1, round(t.decode_seq_steps / t.decode_steps / t.ranks))
            typical = kernel_split(traces[pool], batch, decode_tokens, round(context), t.ranks)
            out.append(PhaseSplit(pool, "decode", t.decode_steps, t.decode_s, t.decode_s / whole, typical))
    return out


def _duration(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds < 1 else f"{seconds:.3g} s"


def render(splits: list[PhaseSplit]) -> list[str]:
    """Summary lines: one per pool and phase."""
    lines = []
    for s in splits:
        k = s.typical
        named = list(k.kinds[:TOP_KINDS])
        rest = sum(v for _, v in k.kinds[TOP_KINDS:])
        if rest > 0:
            named.append(("other", rest))
        kinds = ", ".join(f"{name} {v / k.kernel_s:.0%}" for name, v in named) if k.kernel_s > 0 else "-"
        pool = "" if s.pool == "agg" else f"{s.pool} pool, "
        if s.phase == "prompt":
            what = f"one {k.query_len}-token prompt" + (f" ({k.context_len} cached)" if k.context_len else "")
            head = f"{pool}steps with prompt tokens"
        else:
            what = f"a decode step of {k.batch_size} sequence{'s' if k.batch_size > 1 else ''} x {k.query_len} " \
                   f"token{'s' if k.query_len > 1 else ''}, {k.context_len} cached"
            head = f"{pool}decode-only steps"
        if k.ranks > 1:
            what += f" on each of {k.ranks} attention-DP ranks"
        stages = f" (its {k.stages} pipeline stages together)" if k.stages > 1 else ""
        lines.append(f"{head}: {s.steps} ({s.share:.1%} of the step time); {what}: "
                     f"{_duration(k.kernel_s)} of kernels{stages}: {kinds}")
    return lines
