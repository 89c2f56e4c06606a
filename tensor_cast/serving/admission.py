"""Admission holds: the engine rules that keep new requests out of a step while decodes run.

Owns, for one worker (`simulator.Worker`, pp = 1), the decision before a step whether its ranks may
admit waiting requests (`admit`: TensorRT-LLM's attention-DP balance, then its batch waiting), the
poll of the requests that arrived meanwhile as the step starts (`receive`: SGLang's receive
interval; `release_inbox` moves them to the waiting queues, `settle_latecomers` holds a closed-loop
follow-up that arrived as the step was being scheduled for the schedule after it), how far a fast-forwarded decode run may go before one of those rules would let the held
requests in (`run_limit`), and the rules' counters across such a run (`advance`). The rules and
their sources are in engines.py ("Attention-DP balance", "Batch waiting", "Receive interval").

The counters live on the worker (`adp_wait`, `adp_batching`, `batch_wait`, `recv_count`); each
rule's counter moves once per engine iteration, i.e. once per step, and `advance` adds the further
steps of a fast-forwarded run, which the run limits keep equal to stepping them one at a time
(`tests/test_serving_request_holds.py`, `tests/test_serving_simulator.py`).

It must not schedule (scheduler.py) or time steps (simulator.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .simulator import Worker

RECV_WEIGHT_EXTEND = 1000  # SGLang's receive-skipper weight of a batch that is not decode (engines.py)


def admit(worker: Worker) -> bool:
    """Whether this step may admit waiting requests: the attention-DP balance first, then batch
    waiting (which TensorRT-LLM consults only without attention DP). Sets `worker.batch_wait_held`."""
    allowed = adp_admit(worker)
    worker.batch_wait_held = allowed and batch_wait_holds(worker)
    return allowed and not worker.batch_wait_held


def adp_admit(worker: Worker) -> bool:
    """Whether this step may admit new requests under TensorRT-LLM's attention-DP balance
    (engines.py, "Attention-DP balance"; always True when it is off or the worker has one rank):
    yes when every rank has a context request ready and a free slot (after `adp_batching_wait_iters`
    such iterations while every rank generates); otherwise the waiting counter grows, and they are
    held unless it reached the timeout (then it resets) or some rank has no generation request."""
    limit = worker.engine.adp_balance_timeout_iters
    if not limit or len(worker.ranks) == 1:
        return True
    generating = [rank.generating() for rank in worker.ranks]
    if all(rank.context_ready() and g < rank.engine.max_num_seqs for rank, g in zip(worker.ranks, generating,
                                                                                    strict=True)):
        worker.adp_wait = 0
        if all(generating) and worker.adp_batching < worker.engine.adp_batching_wait_iters:
            worker.adp_batching += 1  # every rank ready: wait a few more iterations for more requests
            return False
        worker.adp_batching = 0
        return True
    worker.adp_wait += 1
    if worker.adp_wait >= limit or not all(generating):
        worker.adp_wait = 0
        return True
    return False


def batch_wait_holds(worker: Worker) -> bool:
    """Whether TensorRT-LLM's batch waiting holds this step's new context requests back (engines.py,
    "Batch waiting"; one-rank agg or prefill workers only, as the engine turns it off under attention
    DP): consulted
    when the step would schedule a context and a generation request; held while the counter is below
    `batch_wait_timeout_iters` and the scheduled tokens below `batch_wait_max_tokens_ratio` x the
    token budget (the counter then grows), else admitted (it resets)."""
    engine = worker.engine
    if not engine.batch_wait_timeout_iters or len(worker.ranks) != 1 or worker.role == "decode":
        return False  # (a disagg decode worker's new requests arrive prefilled: no context to hold)
    prompts, generation = worker.ranks[0].batch_wait_tokens()
    if not prompts or not generation:
        return False
    if worker.batch_wait >= engine.batch_wait_timeout_iters or \
            prompts + generation >= engine.batch_wait_max_tokens_ratio * engine.max_num_batched_tokens:
        worker.batch_wait = 0
        return False
    worker.batch_wait += 1
    return True


def receive(worker: Worker, extend: bool) -> None:
    """The engine polls for new requests as the step starts (async scheduling: they join the next
    schedule). With SGLang's receive interval (engines.py) the poll happens only when the skipper's
    counter, grown by this step's weight (1 for decode, 1000 for a step with prefill), reaches it."""
    interval = worker.engine.scheduler_recv_interval
    if interval > 1:
        worker.recv_count += RECV_WEIGHT_EXTEND if extend else 1
        if worker.recv_count < interval:
            return
        worker.recv_count = 0
    release_inbox(worker)


def release_inbox(worker: Worker, latecomers: bool = False) -> bool:
    """Requests that arrived while the current step was being scheduled join the waiting queues
    (seen by the next schedule), with `latecomers` those that arrived as it was being scheduled too
    (an idle engine sees everything at once); True when there were any."""
    if latecomers and worker.latecomers:
        worker.inbox += worker.latecomers
        worker.latecomers = []
    if not worker.inbox:
        return False
    for req in worker.inbox:
        rank = worker.ranks[req.rank]
        rank.add(req)
        rank.admission_checked = False  # a new request: not yet tried by the scheduler
    worker.inbox = []
    return True


def settle_latecomers(worker: Worker) -> None:
    """The step that was being scheduled as the latecomers (simulator.py) arrived has started without
    them: now they wait like any request that arrives during a step (async: in the inbox, polled as
    the next step starts; sync: in the waiting queues, seen by the next schedule)."""
    if not worker.latecomers:
        return
    if worker.engine.async_scheduling:  # (a receive interval implies it: engines.py checks)
        worker.inbox += worker.latecomers
        worker.latecomers = []
    else:
        release_inbox(worker, latecomers=True)


def run_limit(worker: Worker, admitted: bool, k: int, growth: Callable[[int], np.ndarray]) -> int:
    """Steps (1..k) a fast-forwarded decode run may take while requests are held: up to the step whose
    counter lets them in. Attention-DP balance: its timeout (one step while `adp_batching` waits).
    Batch waiting: its timeout, and only while each later step's schedule still finds the waiting
    head's KV reservation free (`growth(n)`: the blocks the run's steps hold beyond its first), else
    that step leaves the counter alone. Receive interval, with requests in the inbox: the step whose
    weight brings the counter to the interval polls them."""
    engine = worker.engine
    if not admitted and not worker.batch_wait_held:
        k = 1 if worker.adp_batching else min(k, max(1, engine.adp_balance_timeout_iters - worker.adp_wait))
    if worker.batch_wait_held:
        k = min(k, engine.batch_wait_timeout_iters - worker.batch_wait + 1)
        if k > 1:
            rank = worker.ranks[0]  # step j >= 2 schedules with growth[j - 2] more blocks held
            short = np.nonzero(rank.free_blocks - growth(k)[:k - 1] < rank.head_blocks())[0]
            k = int(short[0]) + 1 if len(short) else k
    if worker.inbox:  # the step whose poll takes them (the next one, without a receive interval)
        k = min(k, max(1, engine.scheduler_recv_interval - worker.recv_count))
    return max(1, k)


def advance(worker: Worker, k: int) -> None:
    """The counters after a fast-forwarded run of k steps (the first step was counted when it started)."""
    limit = worker.engine.adp_balance_timeout_iters
    if limit and all(worker.batches):  # each further step: one more iteration of the balance counter
        worker.adp_wait = (worker.adp_wait + k - 1) % limit  # (a rank without work keeps it at 0)
    if worker.batch_wait_held:  # every further step of a held run was held too (`run_limit`)
        worker.batch_wait += k - 1
    interval = worker.engine.scheduler_recv_interval
    if interval > 1:  # further decode steps add 1 each; a poll (of an empty inbox) resets it
        worker.recv_count = (worker.recv_count + k - 1) % interval
