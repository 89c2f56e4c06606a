"""One engine rank's scheduler: which requests run in the next step, and their KV blocks.

Owns `RankScheduler`: the waiting and running queues of one rank (one engine instance, or one
attention-DP rank), its KV-cache block pool, prefix cache, and the three policies of
`engines.py` (`decode_first` = vLLM v1, `prefill_first` = SGLang, `no_evict` = TensorRT-LLM;
the docstring there cites the engines' code). `schedule()` returns the step's batch as
[(request, new tokens)]; `complete(batch, end_s)` advances the requests after the step ran
(prefill progress, emitted tokens, finished requests freeing their blocks).

KV accounting: a request holds ceil(tokens / block_size) blocks for the tokens in its cache
(plus, under `no_evict`, the whole prompt + output reserved at admission). Preemption is by
recompute, as vLLM v1 and SGLang do: the victim's blocks are freed and it re-enters the front
of the waiting queue with its prompt and the tokens it generated to recompute; under `decode_first`
with the prefix cache on (vLLM) the victim's blocks stay cached until allocations evict them, and
its recompute skips what is still cached (engines.py, "Preemption and the prefix cache").

Invariants checked at run time: free blocks never negative, no step over the token budget or
`max_num_seqs` running requests.
"""

from __future__ import annotations

import math
from collections import deque
from operator import itemgetter
from typing import Any

from .engines import EngineProfile
from .workload import Request

Batch = list[tuple[Request, int]]


class RankScheduler:
    def __init__(self, engine: EngineProfile, kv_blocks: int, *, decode_tokens: int = 1,
                 tokens_per_step: float = 1.0, prefix_hit_rate: float = 0.0, role: str = "agg",
                 prebuilt: bool = True) -> None:
        self.engine = engine
        self.total_blocks = kv_blocks
        self.free_blocks = kv_blocks
        self.decode_tokens = decode_tokens  # tokens a decode step computes per sequence (1 + MTP drafts)
        self.tokens_per_step = tokens_per_step  # tokens a decode step emits per sequence (expected)
        self.prefix_hit_rate = prefix_hit_rate
        self.role = role  # agg | prefill (stops after the first token) | decode (requests arrive prefilled)
        # a decode rank takes arrived requests in a step of their own with no tokens (engines.py "Prebuilt
        # iteration"; `prebuilt=False`: not on this rank, e.g. a pipelined worker's)
        self.prebuilt = prebuilt and role == "decode" and engine.prebuilt_iteration
        self.waiting: deque[Request] = deque()
        self.running: list[Request] = []
        self.preemptions = 0
        self.prefixes: set[str] = set()
        self.admission_checked = False  # the last schedule() tried the waiting queue (no early return)
        self._held: list[Request] = []  # running requests in flight in the pipeline, during schedule()
        self.preempted: list[Request] = []  # preempted by the last schedule()
        self.allocated = 0  # blocks allocated so far (each pops the free queue's head: vLLM's LRU eviction)
        self.victims: list[Request] = []  # preempted, blocks still cached (oldest first; decode_first + prefix cache)
        self._retain = engine.prefix_caching and engine.policy == "decode_first"
        self.admitted: list[Request] = []  # moved from the waiting queue to running by the last schedule()
        self._policy = {"decode_first": self._decode_first, "prefill_first": self._prefill_first,
                        "no_evict": self._no_evict}[engine.policy]

    # ---- queues and blocks --------------------------------------------------------------
    def add(self, request: Request) -> None:
        self.waiting.append(request)

    @property
    def idle(self) -> bool:
        return not self.waiting and not self.running

    @property
    def used_blocks(self) -> int:
        return self.total_blocks - self.free_blocks

    def _blocks_for(self, tokens: float) -> int:
        return math.ceil(tokens / self.engine.block_size - 1e-9)

    def _allocate(self, req: Request, tokens: float) -> bool:
        """Grow `req` to hold `tokens` cached tokens; False (nothing changed) when blocks lack."""
        if tokens <= req.blocks * self.engine.block_size:  # fast path: the last block has room
            return True
        need = self._blocks_for(tokens) - req.blocks
        if need > self.free_blocks:
            return False
        self.free_blocks -= need
        self.allocated += need
        req.blocks += need
        return True

    def _free(self, req: Request) -> None:
        self.free_blocks += req.blocks
        req.blocks = 0
        if self.free_blocks > self.total_blocks:
            raise AssertionError(f"KV pool over-freed: {self.free_blocks} > {self.total_blocks} blocks")

    def _preempt(self, req: Request) -> None:
        """Recompute preemption: drop the KV, back to the front of the waiting queue."""
        self.running.remove(req)
        self.preempted.append(req)
        if self._retain:  # its full blocks stay cached behind what was free before it
            req.cached_blocks = min(req.blocks, int(req.computed // self.engine.block_size))
            req.evicted_after = self.allocated + self.free_blocks
            if req.cached_blocks:
                self.victims.append(req)
        self._free(req)
        req.computed = 0.0
        req.prefill_target = req.prompt + int(req.generated)
        req.preemptions += 1
        self.preemptions += 1
        self.waiting.appendleft(req)

    def _cached(self, req: Request) -> int:
        """Blocks of a preempted request still in the prefix cache that its recompute can skip (at
        least its last token is recomputed); 0 once allocations have evicted them."""
        evicted = max(0, self.allocated - req.evicted_after)
        return max(0, min(req.cached_blocks - evicted, (req.prefill_target - 1) // self.engine.block_size))

    def _restored(self, req: Request, hit: int) -> None:
        """A preempted request scheduled again took `hit` cached blocks back from the free queue: the
        victims preempted after it, whose blocks were queued behind those, move up by as many."""
        i = self.victims.index(req)
        for later in self.victims[i + 1:]:
            later.evicted_after -= hit
        del self.victims[i]
        req.cached_blocks = 0

    def _prefix(self, req: Request) -> None:
        """Prefix-cache hit on first admission: shared prompt tokens need no compute (vLLM and
        SGLang always recompute at least the last prompt token)."""
        if req.computed or req.generated or req.prefix_hit:
            return
        hit = 0
        if req.prefix_id is not None:
            if req.prefix_id in self.prefixes:
                hit = req.prefix_tokens
            self.prefixes.add(req.prefix_id)
        elif self.prefix_hit_rate:
            hit = int(req.prompt * self.prefix_hit_rate)
        hit = min(hit, req.prompt - 1)
        hit -= hit % self.engine.block_size  # whole blocks only
        req.prefix_hit = hit
        req.computed = float(hit)

    def _need(self, req: Request) -> int:
        if req.in_prefill:
            return math.ceil(req.prefill_target - req.computed - 1e-9)
        return self.decode_tokens

    def _chunk(self, need: int, budget: int) -> int:
        cap = self.engine.long_prefill_token_threshold or budget
        return min(need, budget, cap)

    # ---- policies -----------------------------------------------------------------------
    def schedule(self, in_flight: dict[Request, int] | None = None, admit: bool = True) -> Batch:
        """The next step's batch. `in_flight` (pp > 1): running requests in batches still in the
        pipeline -> their tokens there. One whose prompt those tokens complete, or a decode, is
        held: not scheduled until its batch ends (its next token is not known yet — vLLM skips a
        request with no new token to schedule, TRT-LLM its `inflight_req_ids`) but it keeps its
        KV blocks, its place in `max_num_seqs` and (SGLang) its output reservation. One still
        mid-prompt after them may get its next prefill chunk now, as if they were computed (vLLM
        advances `num_computed_tokens` when it schedules; SGLang's chunked pipeline).
        `admit=False`: no waiting request is admitted this step (TensorRT-LLM's attention-DP
        balance holds new context requests back, simulator.py); the running ones run as usual."""
        self.admission_checked = False
        if self.preempted:
            self.preempted = []
        if self.admitted:
            self.admitted = []
        if admit:
            batch = self._policy() if not in_flight else self._schedule_around(in_flight)
        else:  # new requests held back (attention-DP balance): the policy sees no waiting queue
            waiting, self.waiting = self.waiting, deque()
            try:
                batch = self._policy() if not in_flight else self._schedule_around(in_flight)
            finally:
                requeued, self.waiting = self.waiting, waiting  # preempted this step: ahead of the others
                self.waiting.extendleft(reversed(requeued))
        tokens = sum(map(itemgetter(1), batch))
        if tokens > max(self.engine.max_num_batched_tokens, len(batch) * self.decode_tokens) \
                or len(self.running) > self.engine.max_num_seqs:
            raise AssertionError(f"scheduler broke its limits: {tokens} tokens, {len(self.running)} running")
        if self.free_blocks < 0:
            raise AssertionError("KV pool overdrawn")
        return batch

    def _schedule_around(self, in_flight: dict[Request, int]) -> Batch:
        """The policy over the running requests not held, the chunks in flight counted as computed."""
        everyone = self.running
        held: list[Request] = []
        ahead: list[tuple[Request, int]] = []
        visible: list[Request] = []
        for r in everyone:
            tokens = in_flight.get(r)
            if tokens is not None and r.computed + tokens >= r.prefill_target:
                held.append(r)
                continue
            if tokens is not None:
                ahead.append((r, r.preemptions))
            visible.append(r)
        if held:
            hold = set(held)  # identity hashing: a request is its own key
            self.running = visible
            self._held = held
            shown = list(visible)  # the policy may append to `visible` itself
        for r, _ in ahead:
            r.computed += in_flight[r]
        try:
            return self._policy()
        finally:
            for r, preemptions in ahead:
                if r.preemptions == preemptions:  # a preempted one restarts from 0: nothing to undo
                    r.computed -= in_flight[r]
            if held:
                # back in admission order: the held ones, the survivors (not preempted), the new ones
                count = len(shown)
                if not self.preempted and self.running[:count] == shown:  # common: nobody left, new ones appended
                    self.running = everyone + self.running[count:]
                else:
                    kept = set(self.running)
                    merged = [r for r in everyone if r in hold or r in kept]
                    known = set(everyone)
                    self.running = merged + [r for r in self.running if r not in known]
                self._held = []

    def _decode_first(self) -> Batch:
        budget = self.engine.max_num_batched_tokens
        batch: Batch = []
        preempted = False
        i = 0
        d = self.decode_tokens
        bs = self.engine.block_size
        running = self.running
        while i < len(running) and budget > 0:
            req = running[i]
            if req.computed < req.prefill_target:
                n = self._chunk(self._need(req), budget)
            else:
                n = d if d <= budget else budget
            if req.computed + n <= req.blocks * bs:  # fits its blocks: the common decode case
                batch.append((req, n))
                budget -= n
                i += 1
                continue
            scheduled = True
            while not self._allocate(req, req.computed + n):
                victim = self.running[-1]
                self._preempt(victim)
                preempted = True
                if victim is req:
                    scheduled = False
                    break
            if not scheduled:
                break
            batch.append((req, n))
            budget -= n
            i += 1
        if preempted:
            return batch
        self.admission_checked = True
        while self.waiting and self._occupied < self.engine.max_num_seqs and budget > 0:
            req = self.waiting[0]
            self._prefix(req)
            hit = self._cached(req) if req.cached_blocks else 0
            if hit:  # tentatively take its cached blocks back (undone if it is not scheduled)
                self.free_blocks -= hit
                req.blocks = hit
                req.computed = float(hit * bs)
            need = self._need(req)
            n = self._chunk(need, budget)
            if (not self.engine.chunked_prefill and need > budget) or not self._allocate(req, req.computed + n):
                if hit:
                    self.free_blocks += hit
                    req.blocks = 0
                    req.computed = 0.0
                break
            if req.cached_blocks:
                self._restored(req, hit)
            self.waiting.popleft()
            self.running.append(req)
            self.admitted.append(req)
            batch.append((req, n))
            budget -= n
        return batch

    @property
    def _occupied(self) -> int:
        """Running requests, those held in the pipeline included (`schedule(in_flight=...)`)."""
        return len(self.running) + len(self._held)

    def _reserved_tokens(self) -> float:
        ratio = self.engine.new_token_ratio
        return sum(ratio * (r.output - r.generated) for r in (*self.running, *self._held))

    def _prefill_first(self) -> Batch:
        batch: Batch = []
        budget = self.engine.max_num_batched_tokens
        bs = self.engine.block_size
        # the chunked (partially prefilled) request continues first
        for req in self.running:
            if req.computed < req.prefill_target and budget > 0:  # in prefill (inlined: runs every step)
                n = self._chunk(self._need(req), budget)
                if not self._allocate(req, req.computed + n):
                    break
                batch.append((req, n))
                budget -= n
        self.admission_checked = True
        if self.waiting and self._occupied < self.engine.max_num_seqs:
            available = self.free_blocks * bs - self._reserved_tokens()
            while self.waiting and budget > 0 and self._occupied < self.engine.max_num_seqs:
                req = self.waiting[0]
                self._prefix(req)
                need = self._need(req)
                reserve = need + self.engine.new_token_ratio * (req.output - req.generated)
                if reserve > available and self._occupied:  # an empty engine admits what its blocks hold
                    break
                if not self.engine.chunked_prefill and need > budget:
                    break
                n = self._chunk(need, budget) if req.in_prefill or self.role != "decode" else 0
                if not self._allocate(req, req.computed + n):
                    break
                available -= reserve
                self.waiting.popleft()
                self.running.append(req)
                self.admitted.append(req)
                if n or self.prebuilt:  # (KV arrived, no prebuilt step: it joins this step's decodes below)
                    batch.append((req, n))
                budget -= n
        if batch:
            return batch
        # a decode step of every running request; retract on KV shortage (fewest output tokens first)
        # (a request retracted here is out of `running`: `gone` says so without scanning the list,
        # which made every decode step quadratic in the batch of a wide attention-DP pool's rank)
        # (`in_prefill` and `_allocate` inlined: this runs every step over every request; with
        # SGLang's one-token pages every decode takes a block every step)
        d = self.decode_tokens
        gone: set[Request] = set()
        decoding = [r for r in self.running if r.computed >= r.prefill_target]
        grow = [(r, math.ceil((r.computed + d) / bs - 1e-9) - r.blocks) for r in decoding if r.computed + d > r.blocks * bs]
        need = sum(map(itemgetter(1), grow))
        if need <= self.free_blocks:  # every one fits: what `_allocate` one by one would do, at once
            for req, k in grow:
                req.blocks += k
            self.free_blocks -= need
            self.allocated += need
            return [(r, d) for r in decoding]
        for req in decoding:
            while req not in gone and not self._allocate(req, req.computed + d):
                victim = min(self.running, key=lambda r: (r.generated, -r.rid))
                self._preempt(victim)
                gone.add(victim)
        if gone:
            decoding = [r for r in decoding if r not in gone]
        return [(r, d) for r in decoding]

    def _no_evict(self) -> Batch:
        budget = self.engine.max_num_batched_tokens
        batch: Batch = []
        append = batch.append
        d = self.decode_tokens
        chunked = self.engine.chunked_prefill
        for req in self.running:  # generation requests first (each reserved its KV at admission)
            if req.computed < req.prefill_target:  # in prefill (`_need` inlined: the loop runs every step)
                n = self._need(req)
                n = self._chunk(n, budget) if chunked else n
                if n > budget:
                    continue
            else:
                n = d
            append((req, n))
            budget -= n
        self.admission_checked = True
        while self.waiting and self._occupied < self.engine.max_num_seqs and budget > 0:
            req = self.waiting[0]
            self._prefix(req)
            need = self._need(req)
            if not self.engine.chunked_prefill and need > budget:
                break
            # the whole request's KV, reserved up front (a prefill worker keeps it until the hand-over only)
            full = req.prompt + 1 if self.role == "prefill" else req.prompt + req.output + self.decode_tokens
            if not self._allocate(req, full):
                break
            n = self._chunk(need, budget)
            self.waiting.popleft()
            self.running.append(req)
            self.admitted.append(req)
            batch.append((req, n))
            budget -= n
        return batch

    def batch_wait_tokens(self) -> tuple[int, int]:
        """(prompt tokens, generation tokens) of the iteration `_no_evict` would schedule now, without
        scheduling it: the whole prompts of the waiting requests it would admit (TensorRT-LLM counts
        `len(get_tokens(0))`, engines.py "Batch waiting") and the running requests' decode tokens.
        The prefix cache is not consulted (a prefix hit would only let more prompts fit)."""
        if self.engine.policy != "no_evict":
            raise AssertionError("batch waiting is TensorRT-LLM's: the no_evict policy only")
        budget = self.engine.max_num_batched_tokens
        generation = 0
        for req in self.running:
            n = self._need(req)
            if req.in_prefill:
                n = self._chunk(n, budget) if self.engine.chunked_prefill else n
                if n > budget:
                    continue
            else:
                generation += n
            budget -= n
        prompts, free, occupied = 0, self.free_blocks, self._occupied
        for req in self.waiting:
            if occupied >= self.engine.max_num_seqs or budget <= 0:
                break
            need = self._need(req)
            if not self.engine.chunked_prefill and need > budget:
                break
            full = req.prompt + 1 if self.role == "prefill" else req.prompt + req.output + self.decode_tokens
            blocks = max(0, self._blocks_for(full) - req.blocks)
            if blocks > free:
                break
            free -= blocks
            occupied += 1
            prompts += req.prompt
            budget -= self._chunk(need, budget)
        return prompts, generation

    def head_blocks(self) -> int:
        """KV blocks the waiting queue's head still needs to be admitted under `no_evict` (its whole
        prompt + output reserved), 0 when nothing waits."""
        if not self.waiting:
            return 0
        head = self.waiting[0]
        full = head.prompt + 1 if self.role == "prefill" else head.prompt + head.output + self.decode_tokens
        return max(0, self._blocks_for(full) - head.blocks)

    def admission_refused(self, budget: int) -> bool:
        """True when a schedule with `budget` tokens left after its running requests would leave the
        waiting queue's head out now and at every later schedule while the running requests only
        decode (free blocks only shrink, the budget and the occupancy stay): `max_num_seqs` reached,
        no budget, or (`decode_first`, `no_evict`) the head's first chunk or whole reservation needs
        more blocks than are free, or its unchunked prompt exceeds the budget. False when it might be
        admitted, and for what this cannot tell side-effect free: `prefill_first` (its reservations
        fall as the running requests decode), a head still to try the prefix cache."""
        if not self.waiting or self._occupied >= self.engine.max_num_seqs or budget <= 0:
            return True
        head = self.waiting[0]
        if self.engine.policy == "prefill_first" or head.prefix_id is not None or self.prefix_hit_rate:
            return False
        need = self._need(head)
        if not self.engine.chunked_prefill and need > budget:
            return True
        tokens = head.computed + self._chunk(need, budget)
        if self.engine.policy == "no_evict":
            tokens = head.prompt + 1 if self.role == "prefill" else head.prompt + head.output + self.decode_tokens
        return tokens > head.blocks * self.engine.block_size and \
            self._blocks_for(tokens) - head.blocks > self.free_blocks

    # ---- after the step -------------------------------------------------------------------
    def complete(self, batch: Batch, end_s: float, steps: int = 1) -> tuple[list[Request], list[Request], int]:
        """Advance the batch's requests; returns (finished, handed over after prefill, decode tokens
        emitted in the last step). A `prefill` role hands a request over once its first token exists.
        `steps` > 1: the batch, pure decode, ran that many identical steps (a fast-forwarded run,
        fast_forward.py): each request first moves on by the steps after the first, its KV blocks
        grown to hold the last step's tokens, then completes that step as a single one."""
        finished: list[Request] = []
        handover: list[Request] = []
        e = self.tokens_per_step
        advance = (steps - 1) * e  # a run's steps after the first (none for a single step)
        if advance:  # a run: every request decodes; the additions of `_step_done`'s decode, in its order
            bs = self.engine.block_size
            for req, n in batch:
                computed = req.computed + advance
                # (`_allocate`'s own first test inlined: most sequences still fit their last block)
                if computed + n > req.blocks * bs and not self._allocate(req, computed + n):
                    raise AssertionError("fast-forward ran past the KV blocks it checked")
                if computed < req.prefill_target:
                    raise AssertionError("a fast-forwarded run holds a request in prefill")
                req.computed = computed + e
                req.generated = generated = req.generated + advance + e
                if generated >= req.output - 1e-9:
                    req.finish_s = end_s
                    finished.append(req)
            emitted = len(batch)
        else:
            emitted = self._step_done(batch, end_s, finished, handover)
        gone = finished + handover
        if gone:
            ids = {id(r) for r in gone}
            self.running = [r for r in self.running if id(r) not in ids]
            for req in gone:
                self._free(req)
        return finished, handover, emitted

    def _step_done(self, batch: Batch, end_s: float, finished: list[Request], handover: list[Request]) -> int:
        """One step of `batch` ended: its requests move on (`complete`); the decode tokens it emitted."""
        emitted = 0
        e = self.tokens_per_step
        for req, n in batch:
            if req.computed >= req.prefill_target:  # decode
                if not n:  # a prebuilt entry (`prebuilt`): no token; its first one reaches the client now
                    req.first_token_s = end_s
                    continue
                req.computed += e
                req.generated += e
                emitted += 1
                if req.generated >= req.output - 1e-9:
                    req.finish_s = end_s
                    finished.append(req)
                continue
            if req.in_prefill:
                req.computed += n
                if req.in_prefill:
                    continue
                req.generated += 1  # the prefill's last position samples a token
                if math.isnan(req.first_token_s):
                    req.first_token_s = end_s
                if self.role == "prefill" and not req.done:
                    handover.append(req)
                    continue
            else:
                req.computed += self.tokens_per_step
                req.generated += self.tokens_per_step
                emitted += 1
            if req.done:
                req.finish_s = end_s
                finished.append(req)
        return emitted

    def context_ready(self) -> bool:
        """A new context request could join this rank's next step: one waits and a batch slot is
        free (what TensorRT-LLM's attention-DP balance asks of every rank; KV blocks not checked)."""
        return bool(self.waiting) and self._occupied < self.engine.max_num_seqs

    def generating(self) -> int:
        """Running requests past their prompt (TensorRT-LLM's scheduled generation requests)."""
        return sum(not r.in_prefill for r in self.running)

    def decode_state(self) -> Any:
        """(count, mean cached) of a pure-decode running set, or None when a prefill is pending."""
        if not self.running or any(r.in_prefill for r in self.running):
            return None
        return len(self.running), sum(r.computed for r in self.running) / len(self.running)
