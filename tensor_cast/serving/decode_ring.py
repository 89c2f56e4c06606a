"""Fast-forward of pipeline-parallel decode (pp > 1): pure-decode rounds through the stage ring.

Owns `DecodeRing` and `plan_ring(worker)`. When every batch a pipelined worker has in flight is
pure decode, those batches hold every running request, and no waiting request can be admitted
(`RankScheduler.admission_refused`), each batch's requests (its *group*) come back as the same
batch the moment it leaves the last stage (`simulator.py`, `pipeline.py`): a group's round j+1
is its round j with every sequence e tokens longer (e = tokens per decode step). The ring
computes the stage times of every group's next rounds with one vectorized call per stage
(`BatchCost.decode_many_s`; a stage takes as long as its slowest attention-DP rank) and the KV
blocks each round adds, up to the round whose end finishes one of the group's requests (at most
the earliest such round of any group + 1, and `MAX_ROUNDS`). The planning waits for the first
batch end after a schedule (the simulator's `ring_ready`), so a request assigned in between
costs no plan. The event
loop then re-issues a group's batch in a few float operations instead of a scheduler pass; the
stage clock and one BATCH_END event per batch stay, so the max-plus stage recurrence, the
event order and every statistic are the step-by-step path's own. The requests' counters and KV
blocks (and the worker's tokens in flight) are brought up to date by `materialize`, which ends
the ring: at the end of a round that finishes a request or reaches the ring's last round, when a
round's new blocks would not fit (the scheduler then preempts), when a request is assigned to
the worker, or when nothing awaits a schedule. A ring needs every group to last `MIN_ROUNDS`.

Exact against `simulate(..., fast_forward=False)`: the same batches at the same times, except
that the stage times come from numpy instead of Python math (equal up to float rounding; the
tests compare at 1e-12 relative). Only for integral tokens per step (MTP with a fractional
expected acceptance is stepped batch by batch: the step path truncates cached lengths to
integers).

It must not schedule (scheduler.py) or run events (simulator.py).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .pipeline import Flight

MIN_ROUNDS = 2  # a ring worth planning: every group runs at least this many rounds before a finish
MAX_ROUNDS = 1024  # rounds planned at once (a longer run is planned again when it ends)


@dataclass
class _Group:
    batches: list[Any]  # per rank [(request, decode tokens)]: every round's batch (same objects)
    preemptions: list[list[int]]
    decode_seqs: int
    start: list[list[tuple[float, float, int]]]  # per rank, per request: (computed, generated, blocks) at entry
    times: list[list[float]]  # [round] -> each stage's seconds (round 0: the batch in flight at entry)
    new_blocks: list[list[int]]  # [round] -> per rank, blocks the round's schedule allocates
    rounds: int  # the ring re-issues the group after rounds 0 .. rounds - 1; the end of `rounds` ends it
    round: int = 0  # the latest round scheduled
    ended: bool = False  # that round ended and awaits its successor's schedule


@dataclass
class DecodeRing:
    groups: list[_Group]
    free: list[int]  # per rank: free KV blocks after the rounds scheduled so far
    total: list[int]
    base: list[int]  # per rank: blocks held outside the groups' requests (checked on materialize)
    running: int
    queue: deque[int] = field(default_factory=deque)  # groups whose round ended, to schedule

    def take(self, flight: Flight) -> bool:
        """`flight` (the oldest in flight) ended: True when the ring takes it (its group will be
        re-issued); False when its end must go through the scheduler (materialize first)."""
        if flight.group < 0:
            return False
        group = self.groups[flight.group]
        if group.round >= group.rounds:
            return False
        group.ended = True
        self.queue.append(flight.group)
        return True

    def schedule(self, worker: Any, now: float) -> Flight | None:
        """The next batch of the group that ended, placed on the stage clock; None when the ring
        cannot issue it (nothing awaits, or its blocks do not fit: the scheduler decides)."""
        if not self.queue:
            return None
        index = self.queue[0]
        group = self.groups[index]
        j = group.round + 1
        new = group.new_blocks[j]
        free = self.free
        for r, n in enumerate(new):
            if n > free[r]:
                return None
        for r, n in enumerate(new):
            free[r] -= n
        self.queue.popleft()
        group.round = j
        group.ended = False
        times = group.times[j]
        ends = worker.clock.run(now, times)
        used = sum(self.total) - sum(free)
        return Flight(batches=group.batches, start_s=now, end_s=ends[-1], stage_s=tuple(times),
                      stage_end_s=tuple(ends), preemptions=group.preemptions, prefill_tokens=0,
                      decode_seqs=group.decode_seqs, kv_use=used / max(1, sum(self.total)), running=self.running,
                      group=index)

    def materialize(self, worker: Any) -> None:
        """End the ring: every request's cached and generated tokens and KV blocks as the rounds
        run so far left them, the ranks' free blocks, the worker's tokens in flight."""
        for group in self.groups:
            done = group.round + (1 if group.ended else 0)  # rounds whose end has been handled
            for rank, batch, start in zip(worker.ranks, group.batches, group.start, strict=True):
                if not batch:
                    continue
                e, d, bs = rank.tokens_per_step, rank.decode_tokens, rank.engine.block_size
                for (req, _), (computed, generated, held) in zip(batch, start, strict=True):
                    req.computed = computed + done * e
                    req.generated = generated + done * e
                    # the blocks of the latest scheduled round (cached + its decode tokens)
                    req.blocks = max(held, math.ceil((computed + group.round * e + d) / bs - 1e-9))
        for rank, free, base in zip(worker.ranks, self.free, self.base, strict=True):
            rank.allocated += max(0, rank.free_blocks - free)  # the rounds' growth, as `_allocate` counts it
            rank.free_blocks = free
            if _outside(rank) != base:
                raise AssertionError(f"{worker.name}: decode ring KV books do not balance "
                                     f"({_outside(rank)} blocks held outside the requests, {base} at its start)")
        worker.in_flight_tokens = {r: n for f in worker.in_flight for batch in f.batches for r, n in batch}
        for f in worker.in_flight:
            f.group = -1
        worker.ring = None


def _outside(rank: Any) -> int:
    return rank.total_blocks - rank.free_blocks - sum(r.blocks for r in rank.running) \
        - sum(r.blocks for r in rank.waiting)


def plan_ring(worker: Any) -> DecodeRing | None:
    """A ring over the worker's batches in flight, or None when they are not a steady decode
    ring or it would not last `MIN_ROUNDS` rounds (see the module docstring)."""
    flights = worker.in_flight
    ranks = worker.ranks
    if not flights or worker.inbox:
        return None
    running = sum(len(rank.running) for rank in ranks)
    if any(f.prefill_tokens for f in flights) or sum(f.decode_seqs for f in flights) != running \
            or len(worker.in_flight_tokens) != running:
        return None  # a prefill in flight, or a running request outside them (it would join the next batch)
    for rank in ranks:
        if rank.preempted or rank.tokens_per_step != int(rank.tokens_per_step):
            return None
    finish: list[int] = []
    for f in flights:
        first = math.inf
        for rank, batch, preemptions in zip(ranks, f.batches, f.preemptions, strict=True):
            d, e = rank.decode_tokens, rank.tokens_per_step
            for (r, n), p in zip(batch, preemptions, strict=True):
                if n != d or r.preemptions != p or r.computed < r.prefill_target:
                    return None
                # the round (0: the one in flight) whose end brings `generated` to the output
                first = min(first, math.ceil((r.output - r.generated - 1e-9) / e) - 1)
        if first < MIN_ROUNDS or first == math.inf:
            return None
        finish.append(int(first))
    for i, rank in enumerate(ranks):
        if rank.waiting:
            for f in flights:  # each group's schedule tries the waiting queue with its own budget
                budget = rank.engine.max_num_batched_tokens - sum(n for _, n in f.batches[i])
                if not rank.admission_refused(budget):
                    return None
    horizon = min(min(finish) + 1, MAX_ROUNDS)
    engine = worker.engine
    # every (group, rank) batch's rounds, costed in one vectorized call per stage
    spans: list[tuple[int, int, int, int]] = []  # (group, rank, first row, rows)
    columns: list[list[Any]] = [[], [], [], [], []]  # sequences, new tokens, mean cached, tokens, overhead
    groups = []
    for g, (f, first) in enumerate(zip(flights, finish, strict=True)):
        k = min(first, horizon)
        rounds = np.arange(k + 1, dtype=float)
        new_blocks = np.zeros((k + 1, len(ranks)), dtype=np.int64)
        start = []
        for i, (rank, batch) in enumerate(zip(ranks, f.batches, strict=True)):
            start.append([(r.computed, r.generated, r.blocks) for r, _ in batch])
            if not batch:
                continue
            count, d, e, bs = len(batch), rank.decode_tokens, rank.tokens_per_step, rank.engine.block_size
            cached = sum(int(r.computed) for r, _ in batch)  # as the step path's integer sum
            spans.append((g, i, sum(len(c) for c in columns[2]), k + 1))
            columns[0].append(np.full(k + 1, count))
            columns[1].append(np.full(k + 1, d))
            columns[2].append((cached + count * e * rounds) / count)
            columns[3].append(np.full(k + 1, max(count * d, engine.padded_tokens(count, d))))
            columns[4].append(np.full(k + 1, engine.overhead_s(count)))
            computed = np.array([r.computed for r, _ in batch])
            held = np.array([r.blocks for r, _ in batch], dtype=float)
            need = np.ceil((computed[None, :] + rounds[:, None] * e + d) / bs - 1e-9)
            grown = np.maximum(need - held, 0.0).sum(axis=1)
            if grown[0]:
                raise AssertionError(f"{worker.name}: a batch in flight lacks the KV blocks it was scheduled with")
            new_blocks[1:, i] = np.diff(grown).astype(np.int64)
        groups.append(_Group(batches=f.batches, preemptions=f.preemptions, decode_seqs=f.decode_seqs, start=start,
                             times=[], new_blocks=new_blocks.tolist(), rounds=k))
    sequences, news, means, tokens, overhead = (np.concatenate(c) for c in columns)
    per_stage = [cost.decode_many_s(sequences, news, means, tokens) for cost in worker.stages]
    per_stage[-1] = engine.step_s(per_stage[-1], overhead)  # the host's step time, on the last stage (simulator.py)
    stacked = np.stack(per_stage, axis=1)
    times = [np.zeros((group.rounds + 1, worker.pp)) for group in groups]
    for g, _, row, rows in spans:  # a stage takes as long as its slowest rank
        np.maximum(times[g], stacked[row:row + rows], out=times[g])
    for group, table in zip(groups, times, strict=True):
        group.times = table.tolist()
    ring = DecodeRing(groups=groups, free=[r.free_blocks for r in ranks], total=[r.total_blocks for r in ranks],
                      base=[_outside(r) for r in ranks], running=running)
    for index, f in enumerate(flights):
        f.group = index
    return ring
