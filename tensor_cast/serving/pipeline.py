"""Pipeline parallelism (pp > 1) in the serving simulator: stage costs, the stage clock, batches in flight.

Owns:
- `stage_costs(sym, table_tokens)`: one `BatchCost` per pipeline stage from the one symbolic
  trace (`deployment/pipeline.py::stage_multiplicities`: a stage's own layers, the embedding on
  the first stage, the final norm / lm_head on the last, and the stage's outgoing send/recv of
  the activations, costed by the interconnect model like any collective). Their sum is the
  whole model's step cost (checked here on a probe batch, at run time);
- `StageClock`: when each stage is next free. A batch enters stage i when stage i-1 handed it
  over and stage i finished the batch before it (batches pass the stages in order, FIFO), so a
  batch's token latency is the sum of its stage times plus the transfers, and in steady state
  the pipeline finishes one batch per slowest-stage time;
- `Flight`: one batch in the pipeline (what the event loop needs when it ends).

How the engines run a pipeline (what `simulator.py` does with these):
- vLLM v1: `EngineCore.step_with_batch_queue` (vllm/v1/engine/core.py) keeps a queue of
  `max_concurrent_batches` batches in flight, which is the pipeline size without async
  scheduling (vllm/config/vllm.py `max_concurrent_batches`: "PP requires PP-size concurrent
  batches to fill the pipeline"; the executors' `max_concurrent_batches` return
  `pipeline_parallel_size`). Filling the queue comes first: while it is not full the scheduler
  is called again at once; when nothing more can be scheduled it blocks until the oldest batch
  ends, updates the scheduler from its output, and schedules again. The scheduler
  (vllm/v1/core/sched/scheduler.py) skips a request with no new token to schedule — "PP>1 and we
  have already scheduled all prompt tokens but they are not finished yet", and likewise a decode
  whose previous token is still in flight — so the batches in flight hold disjoint requests.
- SGLang: `event_loop_pp` (python/sglang/srt/managers/scheduler_pp_mixin.py) cycles over
  `pp_size` micro-batch slots, each with its own running batch, and schedules a slot (a new
  prefill batch, else the slot's decode batch) when its previous micro-batch's output is back:
  pp_size micro-batches in flight. The slots are modelled as above (the requests of the batch
  that just ended are the ones schedulable again); newer versions add `pp_async_batch_depth`
  extra slots (default 0), not modelled.
- TensorRT-LLM: `PyExecutor._executor_loop_pp` (tensorrt_llm/_torch/pyexecutor/py_executor.py)
  keeps `num_micro_batches = pp_size` micro-batches in flight and schedules around
  `inflight_req_ids` (requests of a micro-batch in flight are not scheduled again).
So every engine is simulated the same way: up to pp batches in flight, each made of requests
not already in one — except that a long prompt's next prefill chunk may go into the next batch
while its previous chunk is still in flight (vLLM advances `num_computed_tokens` when it
schedules, so only a request whose whole prompt is scheduled waits; SGLang's PP docs describe the
same "chunked pipeline"; assumed for TensorRT-LLM, which chunks no context by default). A new
batch is scheduled when fewer than pp are in flight; the engine waits for the oldest when nothing
can be scheduled. The host's per-step time (`EngineProfile.overhead_s`: scheduling, sampling,
output handling) is charged on the last stage, where the sampler runs. A request preempted while
one of its batches is in flight loses that batch's work (its KV is gone; it recomputes).

KV cache: each stage's GPUs hold the KV of their own layers only; the engine sizes one block
pool for all stages from the tightest stage (vLLM takes the minimum over its workers) — see
`api.kv_pool`.

It must not schedule (scheduler.py) or run events (simulator.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..deployment.pipeline import stage_multiplicities
from .batch_cost import BatchCost
from .cost_cache import batch_cost

PROBES = ((3, 1, 100), (2, 37, 0))  # (sequences per rank, new, cached): a decode and a prefill batch


def stage_costs(sym: Any, table_tokens: int = 16384) -> tuple[BatchCost, ...]:
    """One `BatchCost` per pipeline stage of the symbolic report `sym` (pp = 1: the whole model),
    through the disk cache of builds (`cost_cache.py`).
    Checked: on uniform probe batches the stages add up to the whole model's `analyze` time."""
    if sym.pp <= 1:
        return (batch_cost(sym, table_tokens=table_tokens),)
    parts = tuple(batch_cost(sym, table_tokens=table_tokens, multiplicities=m) for m in stage_multiplicities(sym))
    for n, new, cached in PROBES:
        total = float(sym.evaluate(batch_size=n * sym.dp, query_len=new, context_len=cached).total_time_s)
        summed = sum(p.step_s([(new, cached)] * n) for p in parts)
        if not math.isclose(summed, total, rel_tol=1e-6):
            raise AssertionError(f"pipeline stages cost {summed} s for {n} x ({new} new, {cached} cached) tokens, "
                                 f"the whole model {total} s")
    return parts


class StageClock:
    """When each pipeline stage is next free; `run` places one batch on every stage in order."""

    def __init__(self, stages: int) -> None:
        self.free_s = [0.0] * stages

    def run(self, start_s: float, stage_s: Sequence[float]) -> list[float]:
        """End time of each stage for a batch scheduled at `start_s` with per-stage times `stage_s`
        (stage i starts when stage i-1 ended it and stage i ended the previous batch)."""
        if len(stage_s) != len(self.free_s):
            raise ValueError(f"{len(stage_s)} stage times for {len(self.free_s)} stages")
        ends = []
        t = start_s
        for i, duration in enumerate(stage_s):
            t = max(t, self.free_s[i]) + duration
            self.free_s[i] = t
            ends.append(t)
        return ends


@dataclass
class Flight:
    """One batch in the pipeline: per rank its [(request, new tokens)], when it was scheduled and
    ends, each stage's time, and the statistics of its step."""

    batches: list[Any]
    start_s: float
    end_s: float
    stage_s: tuple[float, ...]
    stage_end_s: tuple[float, ...]
    preemptions: list[list[int]]  # per rank, each request's preemption count when scheduled
    prefill_tokens: int
    decode_seqs: int
    kv_use: float
    running: int
    group: int = -1  # in a fast-forwarded decode ring (`decode_ring.py`): its group; -1 otherwise
