"""The discrete-event loop: requests arrive, workers run steps, requests finish.

Owns `Worker` (one engine instance: one rank, or several attention-DP ranks that step in
lockstep and wait for the slowest — the MoE all_to_all joins them every layer) and
`simulate_workers(...)`, the event loop over one or more pools of workers: `agg` workers do
prefill and decode; in a disaggregated deployment `prefill` workers hand each request, after
its first token, to a `decode` worker once its KV cache has crossed the interconnect; the
client sees that first token when the decode worker admits the request (a decode pool short of
KV blocks makes requests queue there, and that wait is TTFT, not TPOT).

A request reaches the engine core `request_overhead_s` (engines.py) after its client sent it:
the server's front end (HTTP, tokenization, streaming back) is part of every TTFT and E2E.
With `async_scheduling` (engines.py) a request reaching a worker while a step is in flight waits
in the worker's inbox and joins the waiting queues when the next step starts, so the first
schedule that sees it is the one after that step; an idle worker schedules it at once. A client's
request that reaches a running worker at the very instant one of its steps ended (a closed-loop
follow-up, sent as that step's tokens went out) is a latecomer: the engine scheduled the step
starting then before the request could reach it, so it waits as if it had arrived during that
step (`Worker.latecomers`, `admission.settle_latecomers`, engines.py "The closed-loop client's next
request"); a KV hand-over (disagg) at that instant is seen by that step's schedule.

Events (a heap ordered by time, then by a sequence number, so a run is deterministic): an
arrival, a worker's step end, a KV transfer's end, a poll inside a fast-forwarded run (below). A
worker idle with work starts a step at once; arrivals during a step wait for the next one (engines
schedule between steps). What the loop records of the steps it ran is `step_log.StepLog`'s.

Fast-forward (speed, exact; `fast_forward.py`): when a worker's step is a pure decode that
nothing can change, the loop plans the run of identical steps that follows (`fast_forward.plan`)
up to the next event already queued that can bring its pool work, and keeps the worker in
`running_ff` so that such an event pushed later inside the run cuts it (`fast_forward.cut`) and
its STEP_END is pushed again (a stale one is recognised by `Worker.version`). Under async
scheduling (no receive interval) the request such an event brings waits in the inbox for the next
step's start, and that step was scheduled without it: the run goes on through that step, whose
start is a POLL event moving the inbox to the waiting queues (`fast_forward.polled`), and ends
after it, where the request can join — one run where stepping takes a run, a step and a run. Only two kinds of
event bring a pool work: an arrival (the entry pool: `agg`, or `prefill`) and a KV hand-over's
end (`decode`); each is routed at the instant it fires to one of its pool's workers, so it
bounds and cuts the runs of every worker of that pool and of no other (`_Loop.incoming`). Another
worker's step end changes nothing in this worker's run (the request it finishes or hands over
comes back as one of those two kinds), so a disaggregated decode pool's runs are no longer cut
by every prefill step. When the next such event already lands inside the first step (a
disaggregated decode pool with hundreds of clients receives a hand-over every step or two) no
run is planned: it would be cut to that one step. A run with nothing queued to bound it is costed
for its first steps only; its STEP_END there (`Worker.run_provisional`) costs the rest
(`fast_forward.provisional_end`) and comes back at the run's end with the sequence number it was planned
with. `simulate_workers(..., fast_forward=False)` steps every worker one step (batch) at a time.

Pipeline parallelism (a worker with pp > 1 stages, `pipeline.py`): the worker schedules batches
while fewer than pp are in flight, each of requests not already in one; a batch's stages are
placed on the worker's `StageClock` at once and a BATCH_END event fires when its last stage
ends, in the order the batches started. With nothing schedulable and batches in flight the
worker waits for the oldest (vLLM's `step_with_batch_queue`). Their inter-token latency is a
batch's time from its scheduling to its last stage's end. When the batches in flight are a steady
decode ring (`decode_ring.py`), a batch that ends is re-issued from the ring's precomputed round
(stage times, KV blocks) without a scheduler pass, until the ring's first finishing round, a KV
shortfall, or a request assigned to the worker ends it; otherwise they are stepped batch by batch.

Attention-DP steps (a worker of dp ranks): every rank runs its own batch, and the ranks meet in
every MoE layer's exchange, so a step lasts as long as its slowest rank. Each rank costs its own
attention, dense layers and all_to_all sends at its own tokens; the MoE share (`BatchCost.shared_s`:
the MoE ops, which the trace costs with every rank at T tokens) runs at what the ranks send it.
In a step where every rank runs a CUDA graph (pure decode, or vLLM's piecewise graphs up to the
largest capture size) the engines pad every rank to the largest rank's tokens, so that is
the MoE's count (vLLM `vllm/v1/worker/dp_utils.py` `_synchronize_dp_ranks`: `should_dp_pad` when
the ranks' synced cudagraph mode is not NONE, then `_post_process_dp_padding` -> the max). In an
eager step (a prefill chunk beyond the graph sizes; SGLang and TensorRT-LLM: any prefill) nothing
is padded: the MoE runs at the ranks' combined tokens, dp x their mean (vLLM: the unpadded
`num_tokens_across_dp`; an idle rank runs `execute_dummy_batch`, vllm/v1/engine/core.py
`DPEngineCoreProc`), instead of dp x the prefilling rank's chunk.

Admission holds (`admission.py`): before a step (pp = 1) the worker decides whether its ranks may
admit new requests this step (TensorRT-LLM's attention-DP balance and batch waiting), and as it
starts whether it polls the requests that arrived meanwhile (SGLang's receive interval); a held
step is an ordinary decode step and may be fast-forwarded up to the step whose counter lets the
requests in. Not applied with pp > 1 (the balance is skipped there, the other two refused by `Worker`).

It must not know engine policies (scheduler.py) or step costs (batch_cost.py) beyond calling them.

Split: the PP ring is its own module (`decode_ring.py`), the decode fast-forward planner
`fast_forward.py`, the scheduler policy `scheduler.py`, the admission holds `admission.py`; what
stays here is the event loop and the worker state it advances, whose event order the
fast-forwarded and stepped paths share (`tests/test_serving_pipeline_ff.py`,
`tests/test_serving_fast_forward.py`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, lt
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError
from ..gc_pause import paused_gc
from . import admission, fast_forward
from .batch_cost import BatchCost
from .decode_ring import DecodeRing, plan_ring
from .engines import EngineProfile
from .pipeline import Flight, StageClock
from .scheduler import Batch, RankScheduler
from .sim_result import SimResult, StepRecord
from .step_log import StepLog
from .workload import Request, Workload

ARRIVAL, STEP_END, TRANSFER_END, BATCH_END, POLL = 0, 1, 2, 3, 4
_COMPUTED, _PREFILL_TARGET = attrgetter("computed"), attrgetter("prefill_target")


@dataclass
class Worker:
    name: str
    role: str  # agg | prefill | decode
    ranks: list[RankScheduler]
    cost: BatchCost
    engine: EngineProfile
    busy: bool = False
    next_rank: int = 0
    batches: list[Batch] = field(default_factory=list)
    ff_steps: int = 1
    run_planned: int = 1  # steps the current run was planned with (a cut may shorten ff_steps since)
    run_order: int = 0  # the event sequence number of the run's STEP_END as planned
    run_provisional: bool = False  # that STEP_END ends only the steps costed when it was planned (fast_forward.plan)
    run_start_s: float = 0.0  # the current step (or fast-forwarded run): start, step durations, bookkeeping
    run_durations: Any = None
    run_starts: Any = None  # a fast-forwarded run's step starts, once an event pushed during it asked (fast_forward.cut)
    run_last_start: float = math.inf  # its last step's start, once known (fast_forward.cut)
    run_info: tuple[int, int, float, int] = (0, 0, 0.0, 0)  # prefill tokens, decode seqs, KV use at the start, running
    version: int = 0  # bumped when a fast-forwarded run is cut short (its old STEP_END is stale)
    inbox: list[Request] = field(default_factory=list)  # arrived after the next step was scheduled (async)
    latecomers: list[Request] = field(default_factory=list)  # arrived as the next step was being scheduled
    stages: tuple[BatchCost, ...] = ()  # pp > 1: each pipeline stage's step cost (pipeline.py)
    clock: StageClock | None = None  # pp > 1: when each stage is next free
    in_flight: list[Flight] = field(default_factory=list)  # pp > 1: batches in the pipeline, oldest first
    in_flight_tokens: dict[Request, int] = field(default_factory=dict)  # pp > 1: their requests -> tokens
    ring: DecodeRing | None = None  # pp > 1: the decode ring fast-forwarding its batches (decode_ring.py)
    ring_ready: bool = False  # pp > 1: a ring may be planned at the next batch end (nothing assigned since)
    adp_wait: int = 0  # attention-DP balance: iterations waiting for every rank to have a request (engines.py)
    adp_batching: int = 0  # attention-DP balance: iterations every rank was ready but held (batching_wait_iters)
    batch_wait: int = 0  # TensorRT-LLM batch waiting: iterations new contexts were held so far (engines.py)
    batch_wait_held: bool = False  # the current step (run) holds new contexts by batch waiting
    recv_count: int = 0  # SGLang receive interval: the skipper's counter (engines.py, "Receive interval")

    def __post_init__(self) -> None:
        engine = self.engine
        if self.pp > 1 and (engine.batch_wait_timeout_iters or engine.scheduler_recv_interval > 1):
            raise InvalidArgumentError("batch_wait_timeout_iters and scheduler_recv_interval are not modelled with "
                                       "pipeline parallelism (pp > 1): leave them at 0 and 1")

    @property
    def pp(self) -> int:
        return max(1, len(self.stages))

    def assign(self, req: Request, from_client: bool = True) -> None:
        self.ring_ready = False
        if self.ring is not None:  # a new request may join the next batch: back to the scheduler
            self.ring.materialize(self)
        req.rank = rank = self._route()
        if self.pp == 1 and (self.busy or any(r.running for r in self.ranks)):
            # the engine loop is running (pp > 1 schedules per micro-batch as a stage frees, pipeline.py:
            # not modelled there). A client's request at the instant a step ended (a closed-loop
            # follow-up): the engine scheduled the next step as that step's tokens went out, before a
            # request they caused could reach it (a latecomer, seen one schedule later); during a step:
            # its next step is already scheduled (async), or the schedule at its end sees the request
            # (sync). A KV hand-over (disagg) at that instant is no reply to it: seen as it starts.
            if not self.busy and from_client:
                self.latecomers.append(req)
            elif self.engine.async_scheduling:  # (a receive interval implies it: engines.py checks)
                self.inbox.append(req)
            else:
                self.ranks[rank].add(req)
        else:
            self.ranks[rank].add(req)

    def _route(self) -> int:
        """The attention-DP rank a new request joins (engines.py, "Attention-DP routing")."""
        if len(self.ranks) == 1:
            return 0
        if self.engine.dp_routing == "least_loaded":  # least waiting x 4 + running; ties: the lowest rank
            waiting = [len(r.waiting) for r in self.ranks]
            for req in self.inbox + self.latecomers:
                waiting[req.rank] += 1
            scores = [4 * w + len(r.running) for w, r in zip(waiting, self.ranks, strict=True)]
            return scores.index(min(scores))
        rank = self.next_rank % len(self.ranks)  # round robin
        self.next_rank += 1
        return rank

    @property
    def load(self) -> int:
        return sum(len(r.running) + len(r.waiting) for r in self.ranks)


def entry_role(pools: Mapping[str, Any]) -> str:
    """The pool a client's request arrives at: the aggregated one, else the prefill pool (disagg)."""
    return "agg" if "agg" in pools else "prefill"


class _Loop:
    def __init__(self, pools: dict[str, list[Worker]], workload: Workload, *, transfer_s: Callable[[Request], float],
                 record_steps: bool, progress: Callable[[int, int], None] | None, fast_forward: bool = True) -> None:
        self.pools = pools
        self.fast_forward = fast_forward
        self.workload = workload
        self.transfer_s = transfer_s
        self.progress = progress
        self.heap: list[tuple[float, int, int, Any]] = []
        # the pool each kind of event brings work to (the others only end a worker's own step or batch)
        self.pool_of: dict[int, str] = {ARRIVAL: entry_role(pools), TRANSFER_END: "decode"}
        # per pool, the (time, order) of the queued events that bring it work: a run's horizon, popped
        # with the same events off `heap`
        self.incoming: dict[str, list[tuple[float, int]]] = {name: [] for name in pools}
        self.order = 0
        self.requests: list[Request] = []
        self.finished = 0
        self.now = 0.0
        self.route = {name: 0 for name in pools}
        self.lengths = workload.lengths()
        self.pending: list[Worker] = []
        self.running_ff: list[Worker] = []  # workers in a fast-forwarded run of more than one step
        self.front_end_s = pools[entry_role(pools)][0].engine.request_overhead_s
        self.log = StepLog({role: len(workers[0].ranks) for role, workers in pools.items()}, record_steps)

    def push(self, time: float, kind: int, payload: Any) -> None:
        heapq.heappush(self.heap, (time, self.order, kind, payload))
        pool = self.pool_of.get(kind)
        if pool is not None:
            heapq.heappush(self.incoming[pool], (time, self.order))
        self.order += 1
        if pool is not None and self.running_ff:
            self._cut_runs(time, pool)

    def _cut_runs(self, time: float, pool: str) -> None:
        """An event at `time` that brings `pool` work lands inside its workers' fast-forwarded
        runs: each stops at the first step boundary at or after it (fast_forward.cut), or one step
        later with a POLL event at that boundary (async scheduling), and its end is pushed again."""
        for worker in list(self.running_ff):
            if worker.role != pool:
                continue
            version = worker.version
            poll = fast_forward.cut(worker, time)
            if poll is not None:  # the run's step that starts then polls the request the event brings
                self.push(poll, POLL, (worker, worker.version))
            if worker.version == version:
                continue
            if worker.ff_steps == 1:
                self.running_ff.remove(worker)
            end = worker.run_start_s + float(worker.run_durations.sum())
            heapq.heappush(self.heap, (end, self.order, STEP_END, (worker, worker.version)))
            self.order += 1

    def new_request(self, time: float, prompt: int, output: int, prefix_id: str | None, prefix_tokens: int) -> None:
        """A client sends a request at `time`; the engine core sees it `request_overhead_s` later."""
        req = Request(len(self.requests), time, prompt, output, prefix_id, prefix_tokens)
        self.requests.append(req)
        self.push(time + self.front_end_s, ARRIVAL, req)

    def dispatch(self, pool: str, req: Request, from_client: bool = True) -> Worker:
        workers = self.pools[pool]
        worker = workers[self.route[pool] % len(workers)]  # round robin over the pool's workers
        self.route[pool] += 1
        worker.assign(req, from_client)
        return worker

    def run(self) -> None:
        for arrival in self.workload.initial_arrivals():
            self.new_request(*arrival)
        while self.heap:
            time, order, kind, payload = heapq.heappop(self.heap)
            self.now = time
            pool = self.pool_of.get(kind)
            if pool is not None:
                if heapq.heappop(self.incoming[pool]) != (time, order):
                    raise AssertionError(f"the {pool} pool's incoming events are out of step with the event heap")
                self.kick(self.dispatch(pool, payload, from_client=kind == ARRIVAL))
            elif kind == BATCH_END:
                self.end_batch(*payload)
            elif kind == POLL:  # (stale once its run was cut to end at or before it)
                if payload[1] == payload[0].version:
                    admission.release_inbox(payload[0])
            else:
                worker, version = payload
                if version == worker.version and worker.run_provisional:  # its costed steps ran: the rest
                    end = fast_forward.provisional_end(worker)  # (its place among events of one instant kept)
                    heapq.heappush(self.heap, (end, worker.run_order, STEP_END, (worker, worker.version)))
                elif version == worker.version:  # else: a run cut short, re-pushed with its new end
                    self.end_step(worker)
            if not self.heap or self.heap[0][0] > time:  # every event of this instant is in: start steps
                pending, self.pending = self.pending, []
                for worker in pending:
                    if not worker.busy:
                        self.start_step(worker)

    def kick(self, worker: Worker) -> None:
        """Start a step on `worker` once every event at the current instant has been handled."""
        if not worker.busy and all(w is not worker for w in self.pending):
            self.pending.append(worker)

    # ---- one step (or k fast-forwarded decode steps) ------------------------------------
    def _first_token_at_admission(self, worker: Worker, batches: Sequence[Batch]) -> None:
        """Disagg: the client sees the first token once a decode worker took the request."""
        if worker.role == "decode":
            for rank, batch in zip(worker.ranks, batches, strict=True):
                # only a request just admitted can be at its prompt's end (a decode step moves it past
                # it), unless a preempted one is recomputing its prompt on this rank: then look at all
                for r in ([r for r, _ in batch] if rank.preemptions else rank.admitted):
                    if r.computed == r.prompt and r.first_token_s < self.now:
                        r.first_token_s = self.now

    def start_step(self, worker: Worker) -> None:
        if worker.pp > 1:
            self.start_batches(worker)
            return
        admit = admission.admit(worker)
        batches = [rank.schedule(admit=admit) for rank in worker.ranks]
        if not any(batches) and admission.release_inbox(worker, latecomers=True):  # an idle engine sees them at once
            worker.recv_count = 0  # (an idle SGLang loop polls within microseconds: the poll resets its counter)
            batches = [rank.schedule() for rank in worker.ranks]  # (held only while every rank generates)
        if not any(batches):
            if any(r.running or r.waiting for r in worker.ranks) and not self.heap:
                raise AssertionError(f"{worker.name}: requests pending but nothing schedulable (deadlock)")
            return
        engine = worker.engine
        self._first_token_at_admission(worker, batches)
        costs = []
        prefill_tokens = decode_seqs = 0
        parts = []  # per busy rank: (step, host floor, overhead, tokens)
        for rank, batch in zip(worker.ranks, batches, strict=True):
            if not batch:
                continue
            # C-level passes (map, zip, compress) over the batch: in a decode pool this runs every step
            # over every running request
            reqs, news = zip(*batch)
            if not any(news):  # a prebuilt batch (engines.py "Prebuilt iteration"): no forward, host work only
                parts.append((0.0, 0.0, engine.overhead_s(len(batch)), 0))
                continue
            if rank.prebuilt and 0 in news:  # prebuilt entries beside a recomputed prompt's chunk: only it runs
                reqs, news = zip(*((r, n) for r, n in batch if n))
            computed = list(map(_COMPUTED, reqs))
            seqs = list(zip(news, map(int, computed)))
            chunks = list(compress(news, map(lt, computed, map(_PREFILL_TARGET, reqs))))
            prefill = sum(chunks)
            decodes = len(reqs) - len(chunks)
            prefill_tokens += prefill
            decode_seqs += decodes
            pad = engine.padded_tokens(len(batch), rank.decode_tokens) if not prefill else None
            step = worker.cost.step_s(seqs, pad)
            tokens = sum(news)
            floor = engine.host_floor_s(prefill, tokens, worker.cost.launches) if engine.eager_launch_host_s else 0.0
            parts.append((step, floor, engine.overhead_s(len(batch)), tokens))
        shared = self._adp_shared_s(worker, parts) if prefill_tokens else None
        for step, floor, overhead, tokens in parts:
            if shared is not None:  # the MoE runs at the ranks' combined tokens, not this rank's
                step = step - worker.cost.shared_s(tokens) + shared
            costs.append(engine.step_s(max(step, floor), overhead))
        admission.receive(worker, extend=prefill_tokens > 0)  # async: what arrived so far joins the next schedule
        admission.settle_latecomers(worker)
        first = max(costs)
        incoming = self.incoming[worker.role]  # (only these events can change this worker's batch)
        horizon = incoming[0][0] - self.now if incoming else math.inf
        # an event before the first step ends cuts any run to that step: no run to plan (the
        # common case in a disaggregated decode pool, where hand-overs land every step or two)
        # (one inside the first step that the next step's start polls leaves a run of two)
        poll = None
        if not prefill_tokens and self.fast_forward and all(part[3] for part in parts) \
                and (horizon > first or (horizon > 0 and fast_forward.polled(worker))):
            durations, k, poll = fast_forward.plan(worker, batches, admit, first, horizon)
        else:
            durations, k = np.array([first]), 1
        worker.busy, worker.batches, worker.ff_steps, worker.run_planned = True, batches, k, k
        worker.run_start_s, worker.run_starts, worker.run_last_start = self.now, None, math.inf
        worker.run_durations = durations  # (its first steps only while run_provisional)
        worker.run_provisional = len(durations) < k
        used = sum(r.used_blocks for r in worker.ranks) / max(1, sum(r.total_blocks for r in worker.ranks))
        worker.run_info = (prefill_tokens, decode_seqs, used, sum(len(r.running) for r in worker.ranks))
        if k > 1:
            self.running_ff.append(worker)
        worker.run_order = self.order
        self.push(self.now + (first if k == 1 else float(durations.sum())), STEP_END, (worker, worker.version))
        if poll is not None:
            self.push(self.now + poll, POLL, (worker, worker.version))

    @staticmethod
    def _adp_shared_s(worker: Worker, parts: Sequence[tuple[float, float, float, int]]) -> float | None:
        """Seconds of the MoE share (`BatchCost.shared_s`) of an attention-DP
        step in which some rank prefills, when the ranks run it without DP padding: at the ranks'
        combined tokens spread over the dp ranks (an idle rank runs a dummy batch of none). None:
        the ranks are padded to the largest one (every rank a CUDA-graph step) or there is one rank.
        See the module docstring, "Attention-DP steps"."""
        ranks = len(worker.ranks)
        if ranks == 1 or not parts:
            return None
        engine = worker.engine
        largest = max(p[3] for p in parts)
        if engine.graph_prefill and engine.cuda_graph_sizes and largest <= engine.cuda_graph_sizes[-1]:
            return None  # a piecewise-graph step on every rank: padded to the largest rank's tokens
        return worker.cost.shared_s(math.ceil(sum(p[3] for p in parts) / ranks))

    def _account(self, worker: Worker) -> None:
        """Statistics of the run that just ended (its steps as finally run)."""
        durations, k = worker.run_durations, worker.ff_steps
        if k > 1:
            admission.advance(worker, k)
        prefill_tokens, decode_seqs, start_use, running = worker.run_info
        used: Any = start_use
        if worker.run_planned > 1:  # KV use per step, for the steps the run kept (its requests as planned)
            used = used + fast_forward.run_growth(worker, worker.batches, k) / max(
                1, sum(r.total_blocks for r in worker.ranks))
        if not isinstance(used, np.ndarray):  # one step (never a run cut to one): plain floats, the same numbers
            record = (worker.name, worker.run_start_s, float(durations[0]), k, prefill_tokens, decode_seqs, running)
            self.log.step(worker.role, record, used)
        else:
            record = (worker.name, worker.run_start_s, float(durations.sum()), k, prefill_tokens, decode_seqs, running)
            self.log.run(worker.role, record, durations, used)

    # ---- pipeline parallelism: up to pp batches in flight (pipeline.py) ---------------------
    def start_batches(self, worker: Worker) -> None:
        """Schedule batches while fewer than pp are in flight (vLLM `step_with_batch_queue`):
        each one's stages run as soon as the previous stage handed it over and the stage is free.
        When nothing can be scheduled with batches in flight, the engine waits for the oldest."""
        if worker.ring is not None:
            ringed = worker.ring.schedule(worker, self.now)
            if ringed is not None:
                worker.in_flight.append(ringed)
                self.push(ringed.end_s, BATCH_END, (worker, ringed))
                worker.busy = True
                return
            worker.ring.materialize(worker)  # the scheduler decides this batch
        engine = worker.engine
        clock = worker.clock
        assert clock is not None
        depth = worker.pp
        last = depth - 1
        while len(worker.in_flight) < depth:
            pending = worker.in_flight_tokens
            batches = [rank.schedule(pending) for rank in worker.ranks]
            for rank in worker.ranks:
                for r in rank.preempted:  # its KV is gone: its work in flight is void (end_batch skips it)
                    pending.pop(r, None)
            if not any(batches):
                if worker.in_flight:
                    worker.busy = True  # blocked on the oldest batch's result
                    worker.ring_ready = self.fast_forward
                elif any(r.running or r.waiting for r in worker.ranks) and not self.heap:
                    raise AssertionError(f"{worker.name}: requests pending but nothing schedulable (deadlock)")
                return
            self._first_token_at_admission(worker, batches)
            times = [0.0] * depth
            prefill_tokens = decode_seqs = 0
            for rank, batch in zip(worker.ranks, batches, strict=True):
                if not batch:
                    continue
                seqs = []
                chunks = decodes = 0
                for r, n in batch:
                    computed = r.computed
                    seqs.append((n, int(computed) + pending.get(r, 0)))  # earlier chunks in flight
                    if computed < r.prefill_target:
                        chunks += n
                    else:
                        decodes += 1
                prefill_tokens += chunks
                decode_seqs += decodes
                pad = engine.padded_tokens(len(batch), rank.decode_tokens) if not chunks else None
                grouped = BatchCost.groups(seqs)  # one grouping, costed on every stage
                for i, cost in enumerate(worker.stages):
                    stage = cost.grouped_s(*grouped, pad)
                    if i == last:  # the host's step work, on the last stage
                        stage = engine.step_s(stage, engine.overhead_s(len(batch)))
                    times[i] = max(times[i], stage)
            ends = clock.run(self.now, times)
            total_blocks = max(1, sum(r.total_blocks for r in worker.ranks))
            flight = Flight(batches=batches, start_s=self.now, end_s=ends[-1], stage_s=tuple(times),
                            stage_end_s=tuple(ends),
                            preemptions=[[r.preemptions for r, _ in batch] for batch in batches],
                            prefill_tokens=prefill_tokens, decode_seqs=decode_seqs,
                            kv_use=sum(r.used_blocks for r in worker.ranks) / total_blocks,
                            running=sum(len(r.running) for r in worker.ranks))
            worker.in_flight.append(flight)
            for batch in batches:
                for r, n in batch:
                    pending[r] = pending.get(r, 0) + n
            self.push(flight.end_s, BATCH_END, (worker, flight))
        worker.busy = True  # pp batches in flight: the next is scheduled when the oldest ends
        worker.ring_ready = self.fast_forward  # planned at the next batch end unless a request is assigned first

    def end_batch(self, worker: Worker, flight: Flight) -> None:
        if not worker.in_flight or worker.in_flight[0] is not flight:
            raise AssertionError(f"{worker.name}: pipeline batches must end in the order they started")
        if worker.ring_ready:  # the state the last schedule left (a ring planned now would be cut at once)
            worker.ring_ready = False
            worker.ring = plan_ring(worker)
        ring = worker.ring
        if ring is not None and not ring.take(flight):
            ring.materialize(worker)  # this end goes through the scheduler
            ring = None
        worker.in_flight.pop(0)
        if ring is None:
            self._settle(worker, flight)
        worker.busy = False
        stages = [StepRecord(f"{worker.name}.stage{i}", end - duration, duration, 1, flight.prefill_tokens,
                             flight.decode_seqs, flight.running)
                  for i, (end, duration) in enumerate(zip(flight.stage_end_s, flight.stage_s, strict=True))] \
            if self.log.record_steps else []
        self.log.batch(worker.role, flight.end_s - flight.start_s, max(flight.stage_s), flight.prefill_tokens,
                       flight.decode_seqs, flight.kv_use, stages)
        if ring is None:
            for rank, batch, preemptions in zip(worker.ranks, flight.batches, flight.preemptions, strict=True):
                # a request preempted while this batch was in flight lost its KV: its work here is void
                self._complete(rank, [e for e, p in zip(batch, preemptions, strict=True) if e[0].preemptions == p])
        self.kick(worker)

    @staticmethod
    def _settle(worker: Worker, flight: Flight) -> None:
        """The tokens of `flight`, which just ended, are no longer in flight."""
        pending = worker.in_flight_tokens
        for batch, preemptions in zip(flight.batches, flight.preemptions, strict=True):
            for (r, n), p in zip(batch, preemptions, strict=True):
                if r.preemptions == p:  # else preempted since: already dropped from `pending`
                    left = pending.pop(r) - n
                    if left:
                        pending[r] = left

    def end_step(self, worker: Worker) -> None:
        worker.busy = False
        if worker in self.running_ff:
            self.running_ff.remove(worker)
        self._account(worker)
        for rank, batch in zip(worker.ranks, worker.batches, strict=True):
            self._complete(rank, batch, worker.ff_steps)
        worker.batches = []
        self.kick(worker)

    def _complete(self, rank: RankScheduler, batch: Batch, steps: int = 1) -> None:
        """The step (or run of `steps` decode steps) of `batch` on `rank` ended now: advance its
        requests, hand over, finish, refill."""
        finished, handover, _ = rank.complete(batch, self.now, steps)
        for req in handover:
            transfer = self.transfer_s(req)
            req.transfer_s = transfer
            req.first_token_s = self.now + transfer  # the client sees it once the decode side has the KV
            req.computed = float(req.prompt)
            req.prefill_target = req.prompt
            self.push(self.now + transfer, TRANSFER_END, req)
        for _ in finished:
            self.finished += 1
            if self.progress is not None:
                self.progress(self.finished, self.workload.num_requests)
            if self.workload.kind == "closed" and len(self.requests) < self.workload.num_requests:
                prompt, output = self.lengths[len(self.requests)]
                self.new_request(self.now, prompt, output, None, 0)


def simulate_workers(pools: dict[str, list[Worker]], workload: Workload, *,
                     transfer_s: Callable[[Request], float] = lambda r: 0.0, record_steps: bool = False,
                     progress: Callable[[int, int], None] | None = None, fast_forward: bool = True) -> SimResult:
    """Run `workload` on `pools`; `fast_forward=False` steps every worker one step (batch) at a
    time (the reference the fast-forwards are tested against)."""
    loop = _Loop(pools, workload, transfer_s=transfer_s, record_steps=record_steps, progress=progress,
                 fast_forward=fast_forward)
    with paused_gc():  # a run allocates per step / batch; each automatic collection would walk the
        loop.run()  # process's millions of long-lived objects (torch, sympy): a third of a PP run's time
    unfinished = [r.rid for r in loop.requests if math.isnan(r.finish_s)]
    if unfinished:
        raise AssertionError(f"{len(unfinished)} requests never finished (first: {unfinished[:5]})")
    stuck = [w.name for workers in pools.values() for w in workers if w.in_flight or w.in_flight_tokens or w.ring]
    if stuck:
        raise AssertionError(f"pipeline books do not balance: batches or tokens still in flight on {stuck}")
    ranks = [rank for workers in pools.values() for w in workers for rank in w.ranks]
    durations, weights = loop.log.itl()
    end = max(r.finish_s for r in loop.requests)
    log = loop.log
    return SimResult(requests=loop.requests, steps=log.steps, itl_durations=durations, itl_weights=weights,
                     duration_s=end, preemptions=sum(r.preemptions for r in ranks),
                     kv_blocks=sum(r.total_blocks for r in ranks), kv_peak_use=log.kv_peak,
                     kv_mean_use=log.kv_mean_use, num_steps=log.num_steps, phases=log.phases)
