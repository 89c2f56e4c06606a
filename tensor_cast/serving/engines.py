"""Engine profiles: each serving engine's scheduling defaults and knobs, as a table with sources.

Owns `EngineProfile` (typed, validated), `ENGINES` (vllm, sglang, trtllm) and
`engine_profile(name, overrides)`. The numbers are the engines' own defaults for an online
server on an 80+ GB GPU, read from their code/docs (sources in each row's `sources`); a user
overrides any knob by name (`engine_args={"max_num_seqs": 256}`, CLI `--engine-arg k=v`).

Scheduling policy (the algorithm, in `scheduler.py`):
- `decode_first` (vLLM v1, `vllm/v1/core/sched/scheduler.py::Scheduler.schedule`): every step
  first gives each RUNNING request its tokens (1 for a decode, the next prefill chunk for a
  partial prefill) out of `max_num_batched_tokens`, preempting the last running request by
  recompute when its KV blocks cannot be allocated; then, only if nothing was preempted, admits
  WAITING requests FCFS while the budget and `max_num_seqs` allow, chunking the last prefill to
  the remaining budget. Prefill chunks and decodes share one step (mixed batch).
- `prefill_first` (SGLang, `python/sglang/srt/managers/scheduler.py::get_next_batch_to_run` and
  `schedule_policy.py::PrefillAdder`): if requests wait and memory admits them (free KV minus a
  reservation of `new_token_ratio` × the running requests' remaining output), a prefill-only
  ("extend") step runs with up to `chunked_prefill_size` tokens — the partially prefilled
  (chunked) request first — and the decodes pause; otherwise one decode step of every running
  request. Out of KV in decode: retract the request with the fewest output tokens (recompute).
- `no_evict` (TensorRT-LLM, capacity scheduler `GUARANTEED_NO_EVICT`, the default — docs
  "Useful Runtime Options"; in-flight batching, docs "Paged Attention, IFB, and Request
  Scheduling"): a request is admitted only when KV blocks for its whole prompt + output can be
  reserved, so nothing is ever paused; context and generation requests share a step within
  `max_num_tokens`; context chunking is off by default (a prompt larger than the remaining
  budget waits).

Overheads (time outside the traced forward graph; `overhead_s`, `request_overhead_s`):
- what a step does besides the model's kernels: the scheduler and input preparation on the
  host, the sampler (logits to float32, temperature / top-k / top-p, softmax over the whole
  vocabulary, per sequence: vLLM `vllm/v1/sample/sampler.py`, SGLang `layers/sampler.py`,
  TensorRT-LLM's `TorchSampler`), and output handling (stop checks, detokenization, streaming).
  All three engines overlap the host part with the GPU by default or on request — TensorRT-LLM's
  overlap scheduler ("enabled by default", docs features/overlap-scheduler: `_process_previous_batch`
  runs while step n+1 is on the GPU), SGLang's zero-overhead batch scheduler (v0.4,
  lmsys.org/blog/2024-12-04-sglang-v0-4), vLLM v1's `--async-scheduling` and its detokenizer in
  the separate front-end process — so what remains is the part that is not hidden: a constant
  per step (`step_overhead_s`) and a part per sequence in the step (`seq_overhead_s`). Neither
  can be derived from kernel tables: both are fitted, per engine, by
  `benchmarks/serving_overhead_fit.py` on H100 agg rows of dense models only (the rows whose
  kernels are calibrated), and checked on held-out rows (MoE models, B200, disagg) by
  `benchmarks/serving_fidelity.py`; README "Serving accuracy" gives both errors.
- CUDA graphs: a pure-decode step runs at the next captured batch size (`cuda_graph_sizes`,
  `padded_tokens`): the token-linear ops pay for the padding rows.
- `request_overhead_s`: the front end a request crosses outside the engine core — the HTTP
  request, tokenization and the hand-over to the engine on the way in, detokenization and the
  streamed (SSE) chunk on the way out — charged once, before the engine sees the request, so it is
  part of every client-measured TTFT and E2E and of every closed-loop client's cycle. 10 ms for
  every engine (`FRONT_END_S`): vLLM's own comparison of the benchmark client's TTFT with the
  server's `vllm:time_to_first_token_seconds` (vllm-project/vllm PR #54628: +8.4 to +12.2 ms over
  five runs of 512-token prompts at 8 clients, completions, chat and responses endpoints) — a
  measurement, not a fit; on the overhead fit's training rows (H100 dense agg rows) a grid of 0, 5,
  10, 15, 20 and 30 ms puts the smallest TTFT error at 10 ms (README "Serving accuracy"). SGLang's
  tokenizer / detokenizer managers and trtllm-serve's OpenAI server are the same kind of Python
  front end; their rows are checked, not fitted (held out). Set 0 for the engine alone
  (`--engine-arg request_overhead_s=0`).
- TensorRT-LLM's post-processing workers (`postprocess_workers`, trtllm-serve
  `num_postprocess_workers`): trtllm-serve builds every streamed response (detokenization, the
  OpenAI chunk) in the process whose executor loop runs the steps, and the two compete for the
  host (the GIL); with N > 0 workers that post-processing runs in other processes
  (NVIDIA/TensorRT-LLM PR #5122: "to reduce the main process pressure by splitting the
  post-processing to other processes"; PR #7508: "to minimize host side benchmarking latency").
  TensorRT-LLM's overheads were fitted on rows served through Dynamo, which takes no such
  workers (ai-dynamo/dynamo PR #12592 strips the setting: "not effective in dynamo"), so with
  workers the fitted overhead is not charged (`overhead_s` 0). Measured on every B200 sa-bench
  TensorRT-LLM agg row of the two InferenceMAX scripts that set it (held out; not fitted on them):
  Llama-3.1-70B FP8 (2 workers) TPOT 17.5 -> 7.6 % (median predicted / measured 1.08-1.24 by
  TP -> 1.02-1.10; the FP4 script's rows, without workers, sit at 0.87-0.95 with the overhead),
  gpt-oss-120b (4 workers) 44.0 -> 19.4 % (1.38-1.53 -> 1.12-1.22).
- Host overlap (`host_overlap`): where the engine core prepares step n + 1 on the host while step n
  runs on the GPU, the host's per-step work (`overhead_s`) hides behind the kernels and a step lasts
  max(kernels, overhead) instead of kernels + overhead: the GPU idles only when the host takes
  longer than the kernels. vLLM v1's `AsyncScheduler` does this (vllm/v1/core/sched/
  async_scheduler.py: the scheduler runs one step ahead, with output placeholders for the tokens not
  yet sampled; vllm-project/vllm#19970 "to minimize scheduler overhead by overlapping scheduling with
  model execution"), on by default since vllm-project/vllm#27614 ("[Core] Enable async scheduling
  by default", opened 2025-10-27, merged once the blockers of its plan vllm-project/vllm#27679 were
  in, the last of them in late December 2025); before it, vLLM's `EngineCore.step` scheduled,
  ran the model and processed its outputs in turn, so the host time added to every step. The vLLM
  overheads are fitted on rows of that time (vLLM 0.12.0 and runs measured in October 2025,
  `benchmarks/serving_fidelity.py` `vllm_scheduling`), where they add; on a current vLLM they
  overlap. Measured on the sampled agg rows (docs/serving_accuracy.md, "gpt-oss TPOT, term by
  term"): predicted without any overhead, 18 of the 20 gpt-oss vLLM rows (vLLM 0.15.1 on B200,
  0.18.0 on H100) come within 0.4 ms of their TPOT or above it, where the added 0.28 ms + 44 us x
  64 sequences made the B200 one-GPU 64-client step 16.8 ms against 10.5 measured; the sampler's
  kernels are not that time (64 x 201,088 logits to fp32 and their argmax move 129 MB, 16 us on a
  B200). SGLang's and TensorRT-LLM's overheads
  were fitted on rows that already ran their overlap schedulers, so what was fitted is the part
  those do not hide: `host_overlap` off, the overhead adds.

Async scheduling (`async_scheduling`, on for all three): the engine schedules step n+1 on the
host while step n runs on the GPU, so the batch of step n+1 is fixed when step n starts. A
request that reaches the engine while step n is in flight first shows up in the schedule made
as step n ends, which is step n+2's: it waits for the rest of step n and all of step n+1. vLLM:
`AsyncScheduler` (vllm/v1/core/sched/async_scheduler.py), on by default (vllm/config/scheduler.py
`async_scheduling: bool | None = None`, which vllm/config/vllm.py turns on unless an incompatible
option is set); SGLang: the overlap ("zero-overhead") scheduler, default since v0.4; TensorRT-LLM:
the overlap scheduler, default (docs features/overlap-scheduler), except on the context servers of
a disaggregated deployment, which run without it (`prefill_pool_async` off: TensorRT-LLM's
examples/disaggregated README, "not yet supported in disaggregated context server architectures";
AIConfigurator's generator and the srt-slurm recipes set `disable_overlap_scheduler: true` on every
prefill pool): a TensorRT-LLM prefill worker schedules synchronously unless `async_scheduling` is
given explicitly.

The closed-loop client's next request (the latecomer rule, simulator.py): every engine loop sends
step n's tokens and then schedules at once — synchronously step n+1 (vLLM `EngineCore.step`:
schedule, execute, `update_from_output`, outputs out; SGLang `event_loop_normal`), with async
scheduling step n+2 (vLLM `EngineCore.step_with_batch_queue`: "fulfilling the batch queue has a
higher priority than getting model outputs", so step n+1 is already queued when step n's outputs
are processed and step n+2 is scheduled on the next pass of the loop; SGLang `event_loop_overlap`:
recv, schedule and launch batch n+1, then `process_batch_result` of batch n; TensorRT-LLM's
overlap loop: schedule and launch step n+1, then `_process_previous_batch`). A request the client
sends when step n's last token reaches it has to cross the front end twice (detokenize, stream,
the client's reply, tokenize) and so reaches the engine after that schedule: it joins the step
after the next one — its prefill is step n+2 synchronously and step n+3 with async scheduling,
i.e. it waits one step more than a request arriving just before step n ended. AIConfigurator names the
same term (docs/design/queueing_model.md, failure modes 13-14: "a real closed-loop client's next
request typically arrives after the engine has already scheduled the following iteration and
waits ~one extra pass"). With `request_overhead_s` > 0 that request arrives during step n+1 and
the general rule gives the same steps. An idle engine schedules a new request at once.

Preemption and the prefix cache (`prefix_caching`, on by default as in the engines: vLLM v1's
`enable_prefix_caching`, SGLang's radix cache, TensorRT-LLM's `enable_block_reuse`): vLLM preempts by
recompute, but its KV blocks go back to the free queue with their hashes (vllm/v1/core/
kv_cache_manager.py `free` -> block_pool.py `free_blocks`, appended to the free queue's tail, the last
block first) and are evicted only when an allocation pops them from the queue's head (LRU,
`get_new_blocks`); when the preempted request is scheduled again `get_computed_blocks` finds the
blocks still cached and only the rest is recomputed. Modelled for `decode_first` (vLLM): a victim's
full blocks stay cached until the rank has allocated, since its preemption, more blocks than were
free before it (those were ahead of it in the queue); each further allocated block evicts one of its
blocks, its last first. Blocks another victim takes back from the middle of the queue bring the later
victims' eviction forward. The scheduling of a victim needs blocks only for what is not cached (at
least its last token is recomputed). `prefix_caching` off (`--no-enable-prefix-caching`): the whole
prompt and output so far are recomputed. SGLang's retraction and TensorRT-LLM (which never preempts
under GUARANTEED_NO_EVICT) recompute in full.

Eager steps (`eager_launch_host_s`): a step that runs without CUDA graphs has every kernel launched
from the host, and when the host takes longer per launch than the GPU per kernel, the step lasts
at least launches x host time per launch (`host_floor_s`; the launches are tensor_cast's own count
of the step's kernels, `BatchCost.launches`). Which steps run eagerly, per engine:
- TensorRT-LLM (PyTorch backend): CUDA graphs replay generation-only iterations; context-only and
  mixed iterations run eagerly unless piecewise CUDA graphs are enabled, which is opt-in (docs
  "Torch Compile & Piecewise CUDA Graph": piecewise graphs exist "to reduce context-phase launch
  overhead", and "Piecewise CUDA Graph only handles context-only and mixed context+generation
  iterations"). Host time
  per launch 35 us: TensorRT-LLM's own measurement of its PyTorch flow, "CPU dispatch interval
  (~35us)" per kernel (NVIDIA/TensorRT-LLM PR #12653).
- SGLang: decode batches replay CUDA graphs; prefill ("extend") steps run eagerly unless
  `--enable-piecewise-cuda-graph` (opt-in, sgl-project/sglang PR #10062). Host time per launch
  43 us: an eager one-token DeepSeek-V3 prefill step measured at 82.6 ms of forward time against
  23.1 ms when replayed as a CUDA graph (sgl-project/sglang PR #12160), i.e. host-bound at
  82.6 ms / 1,929 launches (tensor_cast's count for DeepSeek-V3 at TP8).
- vLLM (`graph_prefill`, `eager_beyond_graphs`): with its default CUDA-graph mode
  (FULL_AND_PIECEWISE) mixed steps up to the largest capture size (512 tokens) replay piecewise
  graphs, and larger ones run the piecewise-compiled (Inductor) graph without CUDA graphs. Those
  larger steps are not charged (`eager_beyond_graphs` off): the H100 Llama-3.1-70B FP8 TP8 rows
  bound their host time to at most ~28 us per launch (a 884-token step is 45 ms of kernels and
  1,607 launches, and their measured TTFT at 4 clients, 70 ms, leaves no room for more).
  With `cudagraph_mode: FULL_DECODE_ONLY` (CUDAGraphMode (FULL, NONE): "mixed batches run
  without cudagraph", no piecewise compilation; `graph_prefill` off) every step with prefill
  tokens is charged 60 us per launch: AIConfigurator's measurement of vLLM's eager launches (~60 us
  between launches, vLLM 0.20.1 on B300: collector/layerwise/fpm_ground_truth/
  SMALL_PREFILL_WHY_GOLDEN_16MS.md). The InferenceMAX B200 Llama-3.1-70B scripts run that mode,
  and their rows show the floor (not fitted on them): at 4 clients and 1k prompts TTFT is
  85-130 ms at TP1, 2, 4 and 8 alike while the kernels of the prefill step fall from 65 to 35 ms
  (FP8), and the FP4 runs, with fewer launches (1,125-1,287 against 1,445-1,607), sit lower
  (78-94 ms against 91-133 ms).
The floor is a per-engine knob (`engine_args={"eager_launch_host_s": 0}` turns it off).

Attention-DP balance (`adp_balance_timeout_iters`, TensorRT-LLM `attention_dp_config:
{enable_balance: true, timeout_iters: N}`; 0 = off, TensorRT-LLM's default): the attention-DP
ranks of a worker step together and a step lasts as long as its slowest rank, so one rank
prefilling a prompt while the others decode stalls them all. With the balance on, TensorRT-LLM
schedules new context requests only in an iteration where every rank has one (and a free batch
slot), or after N iterations without that, or when some rank has no generation request
(`PyExecutor._balance_adp_requests`, tensorrt_llm/_torch/pyexecutor/py_executor.py: the waiting
counter grows every iteration that is not such an iteration and resets when it reaches N; the
TensorRT-LLM tech blog 10 "ADP Balance Strategy": 1.31x throughput on DeepSeek-V3 DEP8). The
InferenceMAX TensorRT-LLM DeepSeek-R1 scripts set it, N = 60, for every dp-attention run
(SemiAnalysisAI/InferenceX benchmarks/dsr1_fp4_b200_trt.sh, dsr1_fp8_b200_trt.sh; their
`batching_wait_iters: 0`); TensorRT-LLM's defaults once enabled are timeout_iters 50 and
batching_wait_iters 10 (`AttentionDpConfig`, tensorrt_llm/llmapi/llm_args.py), which the
gpt-oss script takes (benchmarks/gptoss_fp4_b200_trt.sh: `enable_balance: true` alone).
`adp_batching_wait_iters` is that second knob: in an iteration where every rank is ready and
every rank generates, new requests are still held for up to that many iterations. Simulated in
`admission.py`, as are the two options below.

Batch waiting (`batch_wait_timeout_iters`, `batch_wait_max_tokens_ratio`; TensorRT-LLM LLM API
options of the same names, both 0 = off by default): without attention DP, TensorRT-LLM holds the
context requests its scheduler picked for an iteration back, and runs the generation requests
alone, while both (a) the iterations waited so far are fewer than `batch_wait_timeout_iters` and
(b) the iteration's scheduled tokens — every picked context request's whole prompt
(`len(get_tokens(0))`) plus 1 + draft tokens per generation request — are fewer than
`batch_wait_max_tokens_ratio` x `max_num_tokens`. The rule is consulted only in an iteration with
at least one context and one generation request (no dead wait); a held iteration adds one to the
counter, an admitting one resets it (`PyExecutor._schedule` / `_waiting_requests`,
tensorrt_llm/_torch/pyexecutor/py_executor.py, TensorRT-LLM 1.1-1.2; the later unified scheduler's
`_apply_batch_waiting` keeps the rule). With attention DP the rule is off (`not
enable_attention_dp`), and the simulator applies it only to one-rank workers (not to a disagg
decode worker, whose requests arrive prefilled). So a new request that
finds decodes running waits `batch_wait_timeout_iters` decode steps unless enough prompts queue
up: InferenceMAX's Llama-3.1-70B TensorRT-LLM runs at 1k/1k and TP < 8 set 20 and 0.9 (x 16,384
tokens), its DeepSeek-R1 FP8 1k/1k runs from 64 clients 40 and 0.8
(SemiAnalysisAI/InferenceX benchmarks/70b_fp8_b200_trt_slurm.sh, single_node/dsr1_fp8_b200_trt.sh).
Only the `no_evict` policy (TensorRT-LLM) takes it.

Receive interval (`scheduler_recv_interval`, SGLang `--scheduler-recv-interval`, default 1 = every
iteration): SGLang's scheduler polls its input queue only when a counter reaches the interval;
each loop iteration adds the weight of the batch that last ran — 1 for a decode (or target-verify)
batch or none, 1000 for any other (extend) batch — and a poll resets it
(`SchedulerRecvSkipper`, python/sglang/srt/managers/scheduler_recv_skipper.py; weights
`SGLANG_SCHEDULER_RECV_SKIPPER_WEIGHT_*`, sglang/srt/environ.py). With the overlap scheduler the
iteration that schedules step n + 1 polls while step n runs, with step n as its last batch: the
simulator adds step n's weight when step n starts and, on reaching the interval, moves the
requests that arrived meanwhile (the async inbox) to the waiting queue, seen by step n + 1's
schedule. So during decode a new request waits up to `scheduler_recv_interval` steps, after a
prefill step none; an idle engine polls at once. InferenceMAX's SGLang DeepSeek-R1, Qwen3.5 and
GLM-5 B200 scripts set 10 (under 16 clients) or 30. Needs `async_scheduling` (the overlap loop).

Stream interval (TensorRT-LLM `stream_interval`, SGLang `--stream-interval`) is not a knob: both
engines send the first token at once (`py_decoding_iter == 1`, TensorRT-LLM
`PyExecutor._handle_responses`; `len(req.output_ids) == 1`, SGLang `stream_output`) and the last
with the finished request, so TTFT and the mean TPOT (end-to-end minus TTFT over the tokens after
the first) do not depend on it; only the spacing of intermediate chunks does.

Attention-DP routing (`dp_routing`): which rank of a worker a new request joins. vLLM's front end
sends it to the rank with the least waiting x 4 + running requests (`DPLBAsyncMPClient`,
vllm/v1/engine/core_client.py); TensorRT-LLM hands new requests to the ranks with the fewest
active requests, up to an even share (`_balance_requests_across_ranks`, executor_request_queue.py):
both `least_loaded` (vLLM's score, ties to the lowest rank). SGLang's data-parallel controller
deals them out in turn (`load_balance_method` round_robin): `round_robin`. With round robin in a
closed loop a client's next request lands on whichever rank is next, not the one its last
request left, so the ranks drift apart and the lockstep step runs at the fullest rank.

Attention-DP division (`dp_attention_divides`, `dp_attention_conservativeness`): with attention DP
each rank of a worker runs its own scheduler (SGLang: one `Scheduler` process per DP rank; vLLM: one
`EngineCore` per DP rank; TensorRT-LLM: one executor per rank), and the engines differ in whether the
step budget and the running cap they are given are per rank or for the whole worker. SGLang's are
the worker's: `--enable-dp-attention` divides `chunked_prefill_size` by `dp_size`
(`ServerArgs._handle_data_parallelism`, python/sglang/srt/server_args.py: `self.chunked_prefill_size
= self.chunked_prefill_size // self.dp_size`, "to avoid MoE kernel issues"; it runs after
`_handle_gpu_memory_settings`, so the memory rule of sglang_memory.py sees the undivided size), and
gives each rank `max_running_requests // dp_size` when `--max-running-requests` is set (model_runner
/ tp_worker: `server_args.max_running_requests // (dp_size if enable_dp_attention else 1)`;
`pool_configurator.py`: `requested_max_running_requests_per_worker = max_running_requests //
dp_size`); unset, each rank's cap comes from its own KV pool, undivided. The same function
multiplies `schedule_conservativeness` by 0.3, and the scheduler's reservation ratio is
`SGLANG_INIT_NEW_TOKEN_RATIO` (0.7) x schedule_conservativeness (scheduler.py
`init_new_token_ratio`): 0.21 under attention DP. InferenceMAX's SGLang disagg recipes are written
with the division in mind (ishandhanani/srt-slurm recipes/b200-fp8/8k1k/stp/max-tpt-dep8-1p1d.yaml:
`chunked-prefill-size: 131072  # 8k x 16`, `max-prefill-tokens: 16384  # 8k x 16 / dp_size`). vLLM's
`max_num_batched_tokens` / `max_num_seqs` and TensorRT-LLM's `max_num_tokens` / `max_batch_size` are
each rank's (one engine per DP rank; the TensorRT-LLM recipes name `batch64` per DP rank): not
divided. `EngineProfile.attention_dp_rank` gives one rank's profile; a disagg pool's `bs<n>` is
already per rank and is not divided. Not modelled: SGLang's `max_prefill_tokens` (16,384 by default,
not divided) as a second cap on a prefill batch's new tokens. The decode CUDA-graph sizes stay per
rank (each rank replays its own graphs up to `cuda_graph_max_bs`; no division of it was found in
`_handle_data_parallelism`).

Prebuilt iteration (`prebuilt_iteration`, SGLang): a disaggregated SGLang decode rank runs the
requests whose KV arrived as a "prebuilt" batch of their own (disaggregation/decode.py
`get_next_disagg_decode_batch_to_run`), merged into the running batch at the next iteration: no forward
for them (a fake extend whose output, the prefill's first token, streams to the client as it ends; an
idle forward under attention DP, PR #12839), no token, and the rank's running requests wait. The
same-iteration merge (SGLANG_ENABLE_OPT_PREBUILT_BATCH, default off) became the default with PR #19568
(2026-02-28), after the releases measured here (0.5.1-0.5.8.post1); `prebuilt_iteration` False
simulates it (the new requests join the next decode step, as vLLM's and TensorRT-LLM's do).

It must not simulate time or cost steps.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from ..errors import InvalidArgumentError, choices

POLICIES = ("decode_first", "prefill_first", "no_evict")
# how a new request picks its attention-DP rank ("Attention-DP routing")
DP_ROUTINGS = ("round_robin", "least_loaded")
MEMORY_BASES = ("total", "free")  # fraction of device memory | fraction of what weights+activations leave


def _vllm_graph_sizes() -> tuple[int, ...]:
    # vLLM v1 default cudagraph_capture_sizes: [1, 2, 4] + range(8, 256, 8) + range(256, 513, 16)
    # (vllm/config/compilation.py, max_capture_size 512)
    return (1, 2, 4, *range(8, 256, 8), *range(256, 513, 16))


def _sglang_graph_sizes() -> tuple[int, ...]:
    # SGLang server_args._generate_cuda_graph_batch_sizes: 1, 2, 4, 8, 12, ..., then steps of 8/16
    # up to cuda_graph_max_bs (256 for tp < 4 on H100-class GPUs, 512 otherwise/B200)
    return (1, 2, 4, 8, 12, 16, 24, 32, 40, 48, 56, 64, 72, 80, 88, 96, 104, 112, 120, 128,
            *range(144, 257, 16), *range(288, 513, 32))


def trtllm_graph_sizes(max_batch_size: int, enable_padding: bool) -> tuple[int, ...]:
    """TensorRT-LLM's CUDA-graph batch sizes for `cuda_graph_config: {max_batch_size, enable_padding}`
    (`CudaGraphConfig._generate_cuda_graph_batch_sizes`, tensorrt_llm/llmapi/llm_args.py): with padding
    1, 2, 4 and multiples of 8 to 128, else 1-31, 32, 64, 128; then powers of two from 256 below
    max_batch_size; those up to max_batch_size, and max_batch_size itself."""
    if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
        raise InvalidArgumentError(f"CUDA-graph max_batch_size must be an integer >= 1, got {max_batch_size!r}")
    sizes = [1, 2, 4, *range(8, 129, 8)] if enable_padding else [*range(1, 32), 32, 64, 128]
    sizes += [2 ** i for i in range(8, math.ceil(math.log2(max_batch_size)))]
    sizes = sorted(s for s in sizes if s <= max_batch_size)
    if sizes[-1] != max_batch_size:
        sizes.append(max_batch_size)
    return tuple(sizes)


@dataclass(frozen=True)
class EngineProfile:
    name: str
    policy: str  # one of POLICIES
    max_num_batched_tokens: int  # token budget of one step (SGLang: chunked_prefill_size of a prefill step)
    max_num_seqs: int  # running requests at most (SGLang max_running_requests, TRT-LLM max_batch_size)
    chunked_prefill: bool
    long_prefill_token_threshold: int  # cap of one request's prefill chunk per step (0: the budget)
    block_size: int  # KV tokens per block / page
    memory_utilization: float
    memory_basis: str  # "total": fraction of device memory (vLLM, SGLang) | "free": of what is left (TRT-LLM)
    new_token_ratio: float = 0.0  # SGLang: reserved fraction of running requests' remaining output
    cuda_graph_sizes: tuple[int, ...] = ()  # decode batch sizes with a captured graph (padded up to)
    step_overhead_s: float = 0.0  # per step: host/framework time not hidden behind the GPU (see overhead_s)
    seq_overhead_s: float = 0.0  # per sequence in a step: sampling, logits processing, output handling
    request_overhead_s: float = 0.0  # per request, before the engine sees it: HTTP, tokenization, streaming
    async_scheduling: bool = True  # step n+1 is scheduled while step n runs (see "Async scheduling")
    eager_launch_host_s: float = 0.0  # host time per kernel of a step run without CUDA graphs (0: not charged)
    graph_prefill: bool = False  # steps with prefill tokens replay CUDA graphs up to the largest graph size (vLLM)
    eager_beyond_graphs: bool = True  # with graph_prefill, larger prefill steps pay the host floor ("Eager steps")
    adp_balance_timeout_iters: int = 0  # TensorRT-LLM attention-DP balance timeout (0: off; "Attention-DP balance")
    adp_batching_wait_iters: int = 0  # its batching wait (iterations every rank is ready but still held)
    dp_routing: str = "round_robin"  # one of DP_ROUTINGS: a new request's attention-DP rank
    batch_wait_timeout_iters: int = 0  # TensorRT-LLM batch waiting: iterations new contexts wait at most (0: off)
    batch_wait_max_tokens_ratio: float = 0.0  # ... unless scheduled tokens reach this share of the budget
    scheduler_recv_interval: int = 1  # SGLang: loop weight between polls of new requests (1: every step)
    postprocess_workers: int = 0  # TensorRT-LLM num_postprocess_workers: > 0, no fitted overhead ("Overheads")
    host_overlap: bool = False  # with async_scheduling, overhead_s runs beside the kernels: max, not sum ("Host overlap")
    prefill_pool_async: bool = True  # a disaggregated prefill pool keeps async_scheduling ("Async scheduling")
    prefix_caching: bool = True  # freed KV blocks stay cached until evicted ("Preemption and the prefix cache")
    # a disaggregated decode rank takes newly transferred requests in an iteration of their own that
    # runs no forward for them (SGLang's prebuilt batch: "Prebuilt iteration")
    prebuilt_iteration: bool = False
    # TP all-reduce + residual add + RMSNorm as one kernel: None = the engine's default for the model
    # and deployment (tensor_cast/deployment/allreduce_fusion.py); vLLM pass_config.fuse_allreduce_rms,
    # SGLang --enable-flashinfer-allreduce-fusion
    allreduce_fusion: bool | None = None
    # attention DP ("Attention-DP division"): the step budget and a given max_num_seqs are the worker's,
    # divided among its ranks (SGLang), and the reservation ratio is scaled by this factor
    dp_attention_divides: bool = False
    dp_attention_conservativeness: float = 1.0
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise InvalidArgumentError(f"engine policy must be one of {choices(POLICIES)}, got {self.policy!r}")
        if self.dp_routing not in DP_ROUTINGS:
            raise InvalidArgumentError(f"engine dp_routing must be one of {choices(DP_ROUTINGS)}, got {self.dp_routing!r}")
        if self.prebuilt_iteration and self.policy != "prefill_first":
            raise InvalidArgumentError(f"prebuilt_iteration is SGLang's (policy prefill_first), not {self.policy}'s")
        if self.memory_basis not in MEMORY_BASES:
            raise InvalidArgumentError(f"memory_basis must be one of {choices(MEMORY_BASES)}, got {self.memory_basis!r}")
        for name in ("max_num_batched_tokens", "max_num_seqs", "block_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidArgumentError(f"engine {name} must be an integer >= 1, got {value!r}")
        for name in ("memory_utilization", "new_token_ratio", "step_overhead_s", "seq_overhead_s", "request_overhead_s",
                     "eager_launch_host_s"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                raise InvalidArgumentError(f"engine {name} must be a number, got {value!r}")
        for name in ("adp_balance_timeout_iters", "adp_batching_wait_iters", "postprocess_workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidArgumentError(f"engine {name} must be an integer >= 0 (0: off), got {value!r}")
        for name in ("batch_wait_timeout_iters", "scheduler_recv_interval"):
            value = getattr(self, name)
            floor = 1 if name == "scheduler_recv_interval" else 0
            if isinstance(value, bool) or not isinstance(value, int) or value < floor:
                raise InvalidArgumentError(f"engine {name} must be an integer >= {floor}, got {value!r}")
        ratio = self.batch_wait_max_tokens_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
            raise InvalidArgumentError(f"engine batch_wait_max_tokens_ratio must be a number in [0, 1], got {ratio!r}")
        if self.batch_wait_timeout_iters and self.policy != "no_evict":
            raise InvalidArgumentError(f"engine batch_wait_timeout_iters is TensorRT-LLM's (policy no_evict); the "
                                       f"{self.name} profile's policy is {self.policy}")
        if self.postprocess_workers and self.name != "trtllm":
            raise InvalidArgumentError(f"engine postprocess_workers is TensorRT-LLM's (trtllm-serve "
                                       f"num_postprocess_workers); the {self.name} profile has none")
        if self.scheduler_recv_interval > 1 and not self.async_scheduling:
            raise InvalidArgumentError("engine scheduler_recv_interval > 1 is modelled on the overlap loop only: "
                                       "it needs async_scheduling=true")
        for name in ("async_scheduling", "graph_prefill", "eager_beyond_graphs", "dp_attention_divides",
                     "host_overlap", "prefill_pool_async", "prefix_caching"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"engine {name} must be true or false, got {getattr(self, name)!r}")
        if self.allreduce_fusion is not None and not isinstance(self.allreduce_fusion, bool):
            raise InvalidArgumentError(f"engine allreduce_fusion must be true, false or null (the engine's default), "
                                       f"got {self.allreduce_fusion!r}")
        factor = self.dp_attention_conservativeness
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 <= factor <= 1:
            raise InvalidArgumentError(f"engine dp_attention_conservativeness must be a number in [0, 1], got {factor!r}")
        if not 0 < self.memory_utilization <= 1:
            raise InvalidArgumentError(f"engine memory_utilization must be in (0, 1], got {self.memory_utilization!r}")
        if min(self.long_prefill_token_threshold, self.step_overhead_s, self.seq_overhead_s,
               self.request_overhead_s, self.eager_launch_host_s) < 0 or not 0 <= self.new_token_ratio <= 1:
            raise InvalidArgumentError("engine long_prefill_token_threshold, step_overhead_s, seq_overhead_s, "
                                       "request_overhead_s and eager_launch_host_s must be >= 0, new_token_ratio in [0, 1]")

    def attention_dp_rank(self, dp: int, max_num_seqs_given: bool) -> EngineProfile:
        """One attention-DP rank's profile in a worker of `dp` ranks (module docstring, "Attention-DP
        division"): with `dp_attention_divides`, the step budget // dp, max_num_seqs // dp when the
        user gave it (`max_num_seqs_given`; else the engine's own bound, per rank), and
        new_token_ratio x `dp_attention_conservativeness`; otherwise this profile unchanged."""
        if isinstance(dp, bool) or not isinstance(dp, int) or dp < 1:
            raise InvalidArgumentError(f"attention-DP ranks must be an integer >= 1, got {dp!r}")
        if dp == 1 or not self.dp_attention_divides:
            return self
        budget = self.max_num_batched_tokens // dp
        seqs = self.max_num_seqs // dp if max_num_seqs_given else self.max_num_seqs
        if budget < 1 or seqs < 1:
            raise InvalidArgumentError(
                f"{self.name} divides max_num_batched_tokens={self.max_num_batched_tokens} and max_num_seqs="
                f"{self.max_num_seqs} among {dp} attention-DP ranks, leaving none per rank; accepted: values >= {dp}")
        return replace(self, max_num_batched_tokens=budget, max_num_seqs=seqs,
                       new_token_ratio=self.new_token_ratio * self.dp_attention_conservativeness)

    def overhead_s(self, seqs: int) -> float:
        """Seconds one step of `seqs` sequences (on one rank) spends beyond its kernels:
        `step_overhead_s` + `seq_overhead_s` x seqs, or 0 with TensorRT-LLM's post-processing workers
        (see the module docstring, "Overheads")."""
        if self.postprocess_workers:
            return 0.0
        return self.step_overhead_s + self.seq_overhead_s * seqs

    def step_s(self, kernels_s: Any, overhead_s: Any) -> Any:
        """A step's time from its kernels' time and its `overhead_s` (floats, or numpy arrays of
        steps): max(kernels, overhead) with `host_overlap` on an async scheduler, else their sum
        (a synchronous engine runs its host work between steps; "Host overlap")."""
        if not (self.host_overlap and self.async_scheduling):
            return kernels_s + overhead_s
        if isinstance(kernels_s, float) and isinstance(overhead_s, float):
            return max(kernels_s, overhead_s)
        return np.maximum(kernels_s, overhead_s)

    def host_floor_s(self, prefill_tokens: int, step_tokens: int, launches: int) -> float:
        """Least time of a step whose kernels the host launches one by one (no CUDA graph):
        `eager_launch_host_s` x `launches`; 0 for a graph step (pure decode, or with `graph_prefill`
        a step within the largest graph size) and, with `graph_prefill` and `eager_beyond_graphs`
        off, for the larger steps too. See the module docstring, "Eager steps"."""
        if not self.eager_launch_host_s or not prefill_tokens:
            return 0.0
        if self.graph_prefill and (not self.eager_beyond_graphs or
                                   (self.cuda_graph_sizes and step_tokens <= self.cuda_graph_sizes[-1])):
            return 0.0
        return self.eager_launch_host_s * launches

    def padded_tokens(self, decode_seqs: int, tokens_per_seq: int) -> int:
        """Tokens a pure-decode step runs at: the batch padded to the next CUDA-graph size."""
        for size in self.cuda_graph_sizes:
            if size >= decode_seqs:
                return size * tokens_per_seq
        return decode_seqs * tokens_per_seq


# the front end outside the engine core, per request (module docstring, "Overheads")
FRONT_END_S = 10e-3
FRONT_END_SOURCE = ("vllm-project/vllm PR #54628: benchmark-client TTFT minus the server's "
                    "vllm:time_to_first_token_seconds, +8.4 to +12.2 ms (5 runs, 512-token prompts, 8 clients); "
                    "one value for every engine (module docstring, 'Overheads')")

FITTED = ("fitted by benchmarks/serving_overhead_fit.py on {rows} H100 agg rows of dense models ({families}) of "
          "AIConfigurator's silicon sample; every other row held out")

ENGINES: dict[str, EngineProfile] = {
    "vllm": EngineProfile(
        name="vllm", policy="decode_first", max_num_batched_tokens=8192, max_num_seqs=1024, chunked_prefill=True,
        long_prefill_token_threshold=0, block_size=16, memory_utilization=0.9, memory_basis="total",
        cuda_graph_sizes=_vllm_graph_sizes(), step_overhead_s=0.28e-3, seq_overhead_s=44e-6,
        request_overhead_s=FRONT_END_S, graph_prefill=True, eager_beyond_graphs=False, eager_launch_host_s=60e-6,
        dp_routing="least_loaded", host_overlap=True,
        sources={
            "request_overhead_s": FRONT_END_SOURCE,
            "host_overlap": "AsyncScheduler (vllm/v1/core/sched/async_scheduler.py) schedules one step ahead, on by "
                            "default since vllm-project/vllm#27614; rows of earlier versions: host_overlap off "
                            "(benchmarks/serving_fidelity.py vllm_scheduling); their scheduling stays async: the "
                            "H100 Llama-3.1-70B script passes --async-scheduling; the 0.12.0 Qwen3-32B rows' launch "
                            "(AIConfigurator's vLLM 0.12.0 template, through Dynamo) passes no flag, so they may have "
                            "run vLLM 0.12's synchronous default: not settled (TTFT error of those 10 rows 24.4 % "
                            "async, 26.9 % sync)",
            "step_overhead_s, seq_overhead_s": FITTED.format(rows=20, families="Llama-3.1-70B, Qwen3-32B"),
            "max_num_batched_tokens, max_num_seqs": "vllm/engine/arg_utils.py get_batch_defaults: OPENAI_API_SERVER on "
                                                    ">= 70 GiB non-A100 GPUs: 8192 tokens, 1024 seqs",
            "chunked_prefill": "vLLM v1 enables chunked prefill by default (SchedulerConfig)",
            "block_size": "vllm/config/cache.py: block_size 16 on CUDA",
            "memory_utilization": "vllm/config/cache.py: gpu_memory_utilization 0.9 (fraction of total memory)",
            "policy": "vllm/v1/core/sched/scheduler.py Scheduler.schedule: RUNNING first, then WAITING; "
                      "preempt running.pop() (RECOMPUTE)",
            "cuda_graph_sizes": "vllm/config/compilation.py default cudagraph_capture_sizes up to 512",
            "graph_prefill": "CUDAGraphMode FULL_AND_PIECEWISE: mixed steps up to the capture size replay piecewise graphs",
            "eager_beyond_graphs": "off: piecewise-compiled steps beyond the capture sizes show no host floor on the H100 "
                                   "Llama-3.1-70B rows (module docstring, 'Eager steps')",
            "eager_launch_host_s": "AIConfigurator collector/layerwise/fpm_ground_truth/SMALL_PREFILL_WHY_GOLDEN_16MS.md: "
                                   "~60 us between eager launches (vLLM 0.20.1, B300); charged only where no graph "
                                   "covers a prefill step (cudagraph_mode FULL_DECODE_ONLY: graph_prefill off)",
            "async_scheduling": "vllm/config/vllm.py: SchedulerConfig.async_scheduling None -> on unless incompatible (AsyncScheduler)",
            "dp_routing": "vllm/v1/engine/core_client.py DPLBAsyncMPClient.get_core_engine_for_request: the rank of least "
                          "waiting x 4 + running, ties to the first from eng_start_index",
        }),
    "sglang": EngineProfile(
        name="sglang", policy="prefill_first", max_num_batched_tokens=8192, max_num_seqs=4096, chunked_prefill=True,
        long_prefill_token_threshold=0, block_size=1, memory_utilization=0.88, memory_basis="total",
        new_token_ratio=0.7, cuda_graph_sizes=_sglang_graph_sizes(), step_overhead_s=0.86e-3, seq_overhead_s=10.7e-6,
        request_overhead_s=FRONT_END_S, eager_launch_host_s=43e-6, dp_attention_divides=True,
        dp_attention_conservativeness=0.3, prebuilt_iteration=True,
        sources={
            "request_overhead_s": FRONT_END_SOURCE,
            "step_overhead_s, seq_overhead_s": FITTED.format(rows=10, families="Qwen3-32B") +
            " with the sglang kernel section (was 1.0 ms + 8.2 us on the vllm section's kernels)",
            "max_num_batched_tokens": "python/sglang/srt/server_args.py: chunked_prefill_size 8192 on 35-160 GB GPUs "
                                      "(H100/H200), 16384 above (B200): override with engine_args",
            "max_num_seqs": "max_running_requests: derived from the KV pool (no fixed cap; 4096 here as a bound)",
            "block_size": "server_args.py page_size 1",
            "memory_utilization": "server_args.py mem_fraction_static 0.88 fallback (fraction of total memory) when the "
                                  "GPU memory is unknown; simulate() computes SGLang's default from the GPU memory "
                                  "(_handle_gpu_memory_settings, serving/sglang_memory.py)",
            "new_token_ratio": "schedule_policy.py / SGLANG_INIT_NEW_TOKEN_RATIO 0.7: reserved share of remaining output",
            "policy": "python/sglang/srt/managers/scheduler.py get_next_batch_to_run: a new prefill batch first, "
                      "else decode; retract_decode on KV shortage",
            "cuda_graph_sizes": "server_args.py _generate_cuda_graph_batch_sizes, cuda_graph_max_bs 512",
            "async_scheduling": "overlap scheduler on unless --disable-overlap-schedule (zero-overhead batch scheduler, v0.4)",
            "eager_launch_host_s": "sgl-project/sglang PR #12160: eager 1-token DeepSeek-V3 prefill 82.6 ms (23.1 ms as a "
                                   "CUDA graph) / 1,929 launches; prefill graphs opt-in (PR #10062)",
            "prebuilt_iteration": "disaggregation/decode.py get_next_disagg_decode_batch_to_run (PR #12839); "
                                  "merged in the same iteration by default from PR #19568 (2026-02-28)",
            "dp_attention_divides, dp_attention_conservativeness": "server_args.py _handle_data_parallelism: under "
                "--enable-dp-attention chunked_prefill_size //= dp_size and schedule_conservativeness *= 0.3; "
                "max_running_requests // dp_size per rank when set (model_runner / pool_configurator.py)",
        }),
    "trtllm": EngineProfile(
        name="trtllm", policy="no_evict", max_num_batched_tokens=8192, max_num_seqs=2048, chunked_prefill=False,
        long_prefill_token_threshold=0, block_size=32, memory_utilization=0.9, memory_basis="free",
        cuda_graph_sizes=(1, 2, 4, 8, 16, 32, 64, 128), step_overhead_s=1.02e-3, seq_overhead_s=4.6e-6,
        request_overhead_s=FRONT_END_S, eager_launch_host_s=35e-6, dp_routing="least_loaded", prefill_pool_async=False,
        sources={
            "request_overhead_s": FRONT_END_SOURCE,
            "step_overhead_s, seq_overhead_s": FITTED.format(rows=20, families="Llama-3.1-8B, Qwen3-32B") +
            " (refitted with its default all-reduce + RMSNorm fusion in the graph: 0.70 ms + 0 without it)",
            "allreduce_fusion": "PyTorch backend decoder layers: AllReduce with AllReduceFusionOp.RESIDUAL_RMS_NORM "
                                "(tensor_cast/deployment/allreduce_fusion.py)",
            "max_num_batched_tokens, max_num_seqs": "TensorRT-LLM BuildConfig defaults max_num_tokens 8192, "
                                                    "max_batch_size 2048 (docs: Tuning Max Batch Size and Max Num Tokens)",
            "chunked_prefill": "LLM API enable_chunked_prefill=False by default",
            "block_size": "KvCacheConfig tokens_per_block 32",
            "memory_utilization": "KvCacheConfig free_gpu_memory_fraction 0.9 (of memory free after weights)",
            "policy": "CapacitySchedulerPolicy GUARANTEED_NO_EVICT default (docs: Useful Runtime Options)",
            "cuda_graph_sizes": "CudaGraphConfig default batch sizes up to 128 (powers of two)",
            "async_scheduling": "PyTorch backend overlap scheduler, enabled by default (disable_overlap_scheduler=False)",
            "prefill_pool_async": "examples/disaggregated/README.md ctx_config.yaml: 'The overlap scheduler for context "
                                  "servers is currently disabled, as it is not yet supported in disaggregated context "
                                  "server architectures. disable_overlap_scheduler: True'; AIConfigurator's generator "
                                  "(rule_plugin/benchmark/trtllm.rule: prefill disable_overlap_scheduler = true) and the "
                                  "srt-slurm TensorRT-LLM recipes set it on every prefill pool",
            "postprocess_workers": "LLM API num_postprocess_workers 0 by default (PR #5122); > 0: the fitted overhead is "
                                   "not charged (module docstring, 'Overheads')",
            "dp_routing": "tensorrt_llm/_torch/pyexecutor executor_request_queue.py _balance_requests_across_ranks: new "
                          "requests to the ranks with the fewest active requests / tokens (a heap), up to an even share",
            "eager_launch_host_s": "NVIDIA/TensorRT-LLM PR #12653: CPU dispatch interval ~35 us per kernel (PyTorch flow); "
                                   "context and mixed iterations eager (piecewise CUDA graphs opt-in, docs)",
        }),
}


def engine_names() -> list[str]:
    return sorted(ENGINES)


KNOBS = tuple(f.name for f in fields(EngineProfile) if f.name not in ("name", "sources"))


def engine_profile(name: str, overrides: Mapping[str, Any] | None = None) -> EngineProfile:
    """The named engine's profile with `overrides` (knob name -> value) applied."""
    if not isinstance(name, str) or name.lower() not in ENGINES:
        raise InvalidArgumentError(f"unknown engine {name!r}; accepted engines: {choices(engine_names())}")
    profile = ENGINES[name.lower()]
    if not overrides:
        return profile
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise InvalidArgumentError(f"unknown engine option(s) {unknown}; accepted: {choices(KNOBS)}")
    values = dict(overrides)
    if "cuda_graph_sizes" in values:
        values["cuda_graph_sizes"] = tuple(sorted(int(v) for v in values["cuda_graph_sizes"]))
    return replace(profile, **values)
