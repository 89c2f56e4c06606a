"""The decode fast-forward: runs of identical pure-decode steps planned in closed form.

Owns, for one worker (`simulator.Worker`, pp = 1) whose step the event loop has just scheduled
and costed, how many steps its batch runs unchanged (`run_length`), those steps' times and KV
growth (`decode_durations`, `run_growth`), the run as finally planned against the event heap's
horizon (`plan`, the steps beyond its first few costed when it gets there: `extend`), and a run
cut short by an event pushed after it was planned (`cut`). When the
run ends, its requests move on by its steps (`RankScheduler.complete(..., steps=k)`) and its KV
use per step is counted for the steps it kept (`run_growth`).

When every rank of a worker runs all its requests in pure decode and nothing can change its
batch (no waiting request it could admit), the next k steps have a known composition — same
sequences, cached lengths +1 (or + accepted tokens) per step — so their times (and KV use per
step) come from one vectorized cost call, up to the first request that finishes, the KV blocks
that still fit, and the next event anywhere else. A request still waiting does not stop the run
where admission is provably impossible for k steps (`admission_horizon`). An event pushed later
that lands inside such a run cuts it at the first step boundary at or after it (`cut`), so a
worker never overlooks work that reached it; one step later where the step starting at that
boundary was scheduled before the request could join it (async scheduling: `polled`), the poll at
its start returned to the caller. A run's k steps on all attention-DP ranks of the same
sizes are costed in one vectorized call.

The invariant it keeps with simulator.py: a fast-forwarded run gives the results of stepping
it one step at a time (`simulate(..., fast_forward=False)`) to float rounding
(tests/test_serving_fast_forward.py, test_serving_request_holds.py); the quick routes its runs are
costed by (`BatchCost.decode_many_s` with scalar sizes, hoist.py) give the same bits as the
arrays route they replaced (tests/test_serving_ff_paths.py).

It must not schedule (scheduler.py), decide admission holds (admission.py) or push events
(simulator.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import attrgetter, sub
from typing import TYPE_CHECKING

import numpy as np

from . import admission
from .batch_cost import SHORT_RUN
from .scheduler import Batch, RankScheduler

if TYPE_CHECKING:
    from .simulator import Worker

_OUTPUT, _GENERATED = attrgetter("output"), attrgetter("generated")
_COMPUTED, _BLOCKS = attrgetter("computed"), attrgetter("blocks")
LAZY_STEPS = SHORT_RUN  # steps of a run with nothing queued to bound it that `plan` costs (the rest: `extend`)


def plan(worker: Worker, batches: Sequence[Batch], admit: bool, first: float,
         horizon: float) -> tuple[np.ndarray, int, float | None]:
    """(the times of the run's first steps, its length k >= 1, when its poll is): the steps the
    worker runs before it schedules again — its first step (`first` seconds, costed by the caller),
    then as many further identical decode steps as `run_length` and the admission holds allow, cut
    at the first step boundary at or after `horizon` (seconds from now to the next event already
    queued that brings the worker's pool a request), or one step later when that boundary's step
    start is the poll that takes the request (`polled`); then the poll's time, seconds from now
    (None: no poll in the run).

    With nothing queued (an infinite horizon) only the first `LAZY_STEPS` steps are costed now, on
    the quick short-run route: an event pushed later (a disaggregated decode pool's next KV
    hand-over) cuts most such runs within a few steps, and `extend` costs the rest once the run
    gets past them or a cut asks where its later steps start."""
    k = run_length(worker, batches)
    if k > 1:  # a held run stops at the step whose counter lets the held requests in
        k = admission.run_limit(worker, admit, k, lambda n: run_growth(worker, batches, n))
    if k <= 1:
        return np.array([first]), 1, None
    if not math.isfinite(horizon):
        return decode_durations(worker, batches, min(k, LAZY_STEPS), first=first), k, None
    # Only the steps starting before the horizon are kept: cost those a run of steps no shorter than
    # the first would reach it in, and all k only when they fall short of it (a step shorter than
    # the first). Each step's time is the same whichever count is costed, so the run is the same.
    reach = k if first <= 0 else min(k, int(horizon / first) + 2)
    while True:
        durations = decode_durations(worker, batches, reach, first=first)
        starts = np.concatenate(([0.0], np.cumsum(durations)[:-1]))
        if reach == k or starts[-1] >= horizon:
            break
        reach = k
    k = max(1, min(reach, int(np.searchsorted(starts, horizon, side="left"))))
    poll = None
    if k < reach and polled(worker) and starts[k - 1] < horizon < starts[k]:
        poll = float(starts[k])
        k += 1
    return durations[:k], k, poll


def extend(worker: Worker) -> None:
    """Cost the steps of the worker's run that `plan` left uncosted, each as it would have been
    costed then (the run's batch and requests do not change while it runs)."""
    done = len(worker.run_durations)
    if done < worker.ff_steps:
        rest = decode_durations(worker, worker.batches, worker.ff_steps, start=done)
        worker.run_durations = np.concatenate((worker.run_durations, rest))


def provisional_end(worker: Worker) -> float:
    """The worker's provisional STEP_END fired (the steps costed when its run was planned ran, and
    no event cut the run): its remaining steps costed (`extend`, unless a cut that asked did it
    already), when the run ends, its STEP_END no longer provisional."""
    extend(worker)
    worker.run_provisional = False
    return worker.run_start_s + float(worker.run_durations.sum())


def cut(worker: Worker, time: float) -> float | None:
    """An event at `time` that brings the worker a request lands inside its fast-forwarded run
    (pushed after the run was planned): the run stops at the first step boundary at or after
    `time`, as if the horizon had been known. When the worker polls such a request (`polled`), the
    run stops one step later, and the poll's time is returned (None: no poll in the run; the caller
    moves the inbox to the waiting queues then). A run that got shorter has `worker.version` bumped
    (its old end is stale)."""
    if time > worker.run_last_start:  # after the last step's start: the run stands (k would be ff_steps)
        return None
    starts = worker.run_starts  # computed at the first event that may cut the run, then kept
    if starts is None:
        starts = _starts(worker)
        if time > starts[-1] and len(worker.run_durations) < worker.ff_steps:  # past the steps costed so far
            extend(worker)
            starts = _starts(worker)
        worker.run_starts = starts
        worker.run_last_start = float(starts[-1])
        if time > worker.run_last_start:
            return None
    k = max(1, int(np.searchsorted(starts, time, side="left")))
    poll = None
    if polled(worker) and starts[k - 1] < time < starts[k]:  # (a step starts after `time`: k < len(starts))
        poll = float(starts[k])  # the step starting then runs as planned; its start polls the request
        k += 1
    if k >= worker.ff_steps:
        return poll
    worker.ff_steps = k
    worker.run_durations = worker.run_durations[:k]
    worker.run_starts = starts[:k]  # (a prefix of a cumulative sum is the prefix's own)
    worker.run_last_start = float(starts[k - 1])
    worker.run_provisional = False  # (its end, pushed again by the caller, is the run's own)
    worker.version += 1
    return poll


def polled(worker: Worker) -> bool:
    """A request reaching the worker during a step waits in its inbox for the next step's start, whose
    poll moves it to the waiting queues, one schedule after the step's own (`async_scheduling`: the
    next step was scheduled while this one ran; every step polls without a receive interval)."""
    return worker.engine.async_scheduling and worker.engine.scheduler_recv_interval <= 1


def _starts(worker: Worker) -> np.ndarray:
    """When each costed step of the worker's run starts (the prefix of a cumulative sum is the
    prefix's own: costing more steps later leaves these as they are)."""
    return worker.run_start_s + np.concatenate(([0.0], np.cumsum(worker.run_durations)[:-1]))


def run_length(worker: Worker, batches: Sequence[Batch]) -> int:
    """How many steps (>= 1) the current decode batch can run unchanged (see the module docstring)."""
    limit = math.inf
    for rank, batch in zip(worker.ranks, batches, strict=True):
        if not batch:
            if rank.running or rank.waiting:
                return 1
            continue
        if len(batch) != len(rank.running):
            return 1
        if rank.waiting and len(rank.running) < rank.engine.max_num_seqs:
            horizon = admission_horizon(rank, batch)  # a waiting request might be admitted
            if horizon <= 1:
                return 1
            limit = min(limit, horizon)
        e = rank.tokens_per_step
        reqs = next(zip(*batch))
        remaining = min(map(sub, map(_OUTPUT, reqs), map(_GENERATED, reqs)))
        limit = min(limit, math.ceil(remaining / e - 1e-9))
        # KV blocks for the k-th step: every sequence holds computed + (k-1)e + d tokens; a
        # sequence needs at most ceil(((k-1)e + d) / bs) + 1 more blocks (cheap bound first)
        bs = rank.engine.block_size
        k = int(min(limit, 1 << 20))
        if len(batch) * (math.ceil(((k - 1) * e + rank.decode_tokens) / bs) + 1) > rank.free_blocks:
            computed = np.array([r.computed for r, _ in batch])
            held = np.array([r.blocks for r, _ in batch])
            while k > 1:
                need = np.ceil((computed + (k - 1) * e + rank.decode_tokens) / bs - 1e-9) - held
                if need.clip(min=0).sum() <= rank.free_blocks:
                    break
                k //= 2
        limit = min(limit, k)
    return int(limit) if limit != math.inf else 1


def admission_horizon(rank: RankScheduler, batch: Batch) -> float:
    """Steps (>= 1; inf: none) during which the head of `rank`'s waiting queue surely stays out,
    for SGLang's `prefill_first` admission (reserve = its need + new_token_ratio x its output,
    admitted when reserve <= free KV tokens - new_token_ratio x the running requests' remaining
    output). At the schedule of run step j >= 1 the free tokens are at most those now and, since
    every sequence grows by e tokens a step, at most those now + S - n·e·(j - 1) (S: the room left
    in the sequences' last blocks); the reservation falls by ratio·n·e a step. Admission is thus
    impossible while reserve exceeds both bounds; the run stops where the first bound allows it
    (a conservative horizon: the scheduler itself decides at that step). vLLM's `decode_first`
    and TRT-LLM's `no_evict` admit the head when its blocks fit in the same token budget: during
    a decode run the budget is fixed and free blocks only shrink, so a head refused now stays
    refused (inf) — unless this step returned before trying it (a preemption). A head with a
    prefix id gets 1 (step by step): its first check registers the prefix."""
    engine = rank.engine
    head = rank.waiting[0]
    if head.prefix_id is not None or not rank.admission_checked:
        return 1
    if engine.policy != "prefill_first":
        return math.inf
    n = len(batch)
    e, bs, ratio = rank.tokens_per_step, engine.block_size, engine.new_token_ratio
    reserve = rank._need(head) + ratio * (head.output - head.generated)
    avail = rank.free_blocks * bs - sum(ratio * (r.output - r.generated - e) for r, _ in batch)
    slack = sum(max(0.0, r.blocks * bs - (r.computed + rank.decode_tokens)) for r, _ in batch)
    gap = reserve - avail - 1e-6 * (abs(reserve) + abs(avail) + 1.0)
    if gap <= 0:
        return 1
    if gap > slack or ratio == 0:
        return math.inf
    return 1 + math.ceil(gap / (ratio * n * e))


def run_growth(worker: Worker, batches: Sequence[Batch], k: int) -> np.ndarray:
    """KV blocks each step of a fast-forwarded run holds beyond its first step's (after that
    step's allocation: every sequence at its cached tokens + j·e + its decode tokens)."""
    extra = None
    steps = np.arange(k, dtype=float)[:, None]
    for rank, batch in zip(worker.ranks, batches, strict=True):
        if batch:
            reqs = next(zip(*batch))
            computed = np.array(list(map(_COMPUTED, reqs)))
            held = np.array(list(map(_BLOCKS, reqs)))
            tokens = computed + steps * rank.tokens_per_step + rank.decode_tokens
            need = np.ceil(tokens / rank.engine.block_size - 1e-9) - held
            blocks = need.clip(min=0).sum(axis=1)  # whole blocks: exact in any order of addition
            extra = blocks if extra is None else extra + blocks
    return np.zeros(k) if extra is None else extra


def decode_durations(worker: Worker, batches: Sequence[Batch], k: int, start: int = 0,
                     first: float | None = None) -> np.ndarray:
    """The times of steps `start` .. k - 1 of the run: the slowest rank's, those steps of all ranks
    with the same sizes costed in one vectorized call (an attention-DP worker has up to dozens of
    ranks, mostly of a few sizes). A step's time does not depend on which others are costed with
    it (element by element, and the quick routes bit for bit: tests/test_serving_ff_paths.py).
    `first` (with `start` 0): step 0's time, costed by the caller, taken as it is."""
    if first is not None:
        rest = decode_durations(worker, batches, k, start=1)
        return np.concatenate(([first], rest))
    if len(batches) == 1 and batches[0] and k - start <= SHORT_RUN:  # one rank, a short run: Python floats
        rank, batch = worker.ranks[0], batches[0]
        count, d, e = len(batch), rank.decode_tokens, rank.tokens_per_step
        mean = sum(map(int, map(_COMPUTED, next(zip(*batch))))) / count
        floats = worker.cost.decode_short_s(count, d, [mean + e * j for j in range(start, k)],
                                            max(count * d, rank.engine.padded_tokens(count, d)))
        if floats is not None:  # the float operations of the arrays below, element by element
            overhead, step_s = rank.engine.overhead_s(count), rank.engine.step_s
            return np.array([max(0.0, step_s(x, overhead)) for x in floats])
    steps = np.arange(start, k)
    counts, news, tokens, means, overheads, engines = [], [], [], [], [], []
    for rank, batch in zip(worker.ranks, batches, strict=True):
        if not batch:
            continue
        count, d = len(batch), rank.decode_tokens
        counts.append(count)
        news.append(d)
        tokens.append(max(count * d, rank.engine.padded_tokens(count, d)))
        means.append(sum(map(int, map(_COMPUTED, next(zip(*batch))))) / count + rank.tokens_per_step * steps)
        overheads.append(rank.engine.overhead_s(count))
        engines.append(rank.engine)
    # ranks of the same sizes are costed together, their sizes as scalars (BatchCost.decode_many_s:
    # the same numbers as arrays of sizes, but the expression's terms without C are evaluated once)
    alike: dict[tuple[int, int, int], list[int]] = {}
    for i, sizes in enumerate(zip(counts, news, tokens)):
        alike.setdefault(sizes, []).append(i)
    times = np.empty((len(counts), len(steps)))
    for (count, d, padded), rows in alike.items():
        stacked = means[rows[0]] if len(rows) == 1 else np.concatenate([means[i] for i in rows])
        seconds = np.asarray(worker.cost.decode_many_s(count, d, stacked, padded))
        times[rows] = (seconds if seconds.shape == stacked.shape else np.broadcast_to(seconds, stacked.shape)) \
            .reshape(len(rows), len(steps))
    out = np.zeros(len(steps))
    for row, overhead, engine in zip(times, overheads, engines, strict=True):
        out = np.maximum(out, engine.step_s(row, overhead))
    return out
