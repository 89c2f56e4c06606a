"""`simulate(...)`: a model served by an engine on a deployment under a request stream.

Owns argument validation for serving runs and the assembly of one simulation: one symbolic
trace per (model, deployment) -> `BatchCost` (cached in-process) and the KV pool it leaves
(`kv_pool`, from tensor_cast's own memory model: weights and the activation peak at the step
budget, at the engine's memory utilization) -> ranks and workers -> the event loop ->
`ServingReport`. Every bad argument is a `TensorCastError` naming it and the accepted values.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any
from weakref import WeakKeyDictionary

import sympy

from ..api import DEPLOYMENT_KEYS, analyze, load_model
from ..backends.device import load_device
from ..backends.engines import ENGINES as KERNEL_SECTIONS
from ..deployment.allreduce_fusion import resolve_allreduce_fusion
from ..deployment.moe_exchange import resolve_moe_exchange
from ..errors import DeploymentError, InvalidArgumentError
from ..gc_pause import paused_gc
from ..models.spec import ModelSpec
from ..sizes import B, C, S
from ..speculative import SpeculativeDecoding
from .accuracy import accuracy_note
from .batch_cost import BatchCost
from .disagg import kv_transfer_s, parse_disagg
from .engines import EngineProfile, engine_profile
from .pipeline import StageClock, stage_costs
from .report import ServingReport
from .scheduler import RankScheduler
from .sglang_memory import sglang_mem_fraction_static
from .simulator import Worker, entry_role, simulate_workers
from .time_split import split_time
from .workload import make_workload

_COST_CACHE: OrderedDict[str, tuple[Any, tuple[BatchCost, ...]]] = OrderedDict()
COST_CACHE_SIZE = 32


def step_costs(model: str | ModelSpec, *, device: Any, engine: str = "vllm", mtp: int = 0,
               table_tokens: int = 16384, **deployment: Any) -> tuple[Any, tuple[BatchCost, ...]]:
    """(symbolic report, one BatchCost per pipeline stage) of one (model, device, deployment),
    cached in-process; pp = 1: (report, (the whole model's,)). See `pipeline.py`."""
    key = repr((model if isinstance(model, str) else model.key(), getattr(device, 'name', device),
                getattr(device, 'path', ''), engine, mtp, table_tokens,
                sorted(deployment.items())))
    if key in _COST_CACHE:
        _COST_CACHE.move_to_end(key)
        return _COST_CACHE[key]
    sym = analyze(model, device=device, symbolic=True, mtp=mtp, engine=engine, **deployment)
    value = (sym, stage_costs(sym, table_tokens=table_tokens))
    _COST_CACHE[key] = value
    while len(_COST_CACHE) > COST_CACHE_SIZE:
        _COST_CACHE.popitem(last=False)
    return value


def step_cost(model: str | ModelSpec, *, device: Any, engine: str = "vllm", mtp: int = 0,
              table_tokens: int = 16384, **deployment: Any) -> tuple[Any, BatchCost]:
    """(symbolic report, BatchCost) of one (model, device, deployment) without pipeline stages."""
    if deployment.get("pp", 1) != 1:
        raise InvalidArgumentError(f"step_cost is one step of the whole model (pp=1), got pp={deployment['pp']!r}; "
                                   "accepted: pp=1, or step_costs(...) for one cost per pipeline stage")
    sym, costs = step_costs(model, device=device, engine=engine, mtp=mtp, table_tokens=table_tokens, **deployment)
    return sym, costs[0]


_STAGE_MEMORY: WeakKeyDictionary[Any, list[tuple[Any, Any, Any]]] = WeakKeyDictionary()


@dataclass(frozen=True)
class KVPool:
    blocks: int  # per rank
    bytes_per_token: float  # per GPU (pp > 1: on the GPUs of the stage that holds the fewest blocks)
    budget_bytes: float
    # hybrid models (Mamba-2, gated DeltaNet, KDA layers): the fixed recurrent + conv state of one
    # sequence, per GPU, and the sequences whose state the budget holds beside their tokens' blocks
    state_bytes_per_sequence: float = 0.0
    max_sequences: int | None = None  # None: no fixed state (pure attention), max_num_seqs decides
    state_limited: bool = False  # the memory, not max_num_seqs or the clients, set max_sequences


def kv_pool(sym: Any, profile: Any, engine: EngineProfile, typical_tokens: int, memory_utilization: float,
            running: int | None = None) -> KVPool:
    """KV blocks per rank: what the engine's memory share leaves after weights and the activation
    peak of a full-budget prefill step (vLLM's profile run does the same), per GPU. With pipeline
    stages every stage's GPUs hold only their own layers' weights and KV; one block pool serves
    all stages, so the stage with the fewest blocks sets it (vLLM: the minimum over workers). `running`:
    the most sequences that can run at once (a closed loop's clients), bounding the fixed state a hybrid
    model's budget sets apart (None: max_num_seqs)."""
    if sym.pp > 1:
        parts = _STAGE_MEMORY.get(sym)
        if parts is None:  # the per-stage view walks every op row: once per trace, not per simulation
            from ..deployment.pipeline import stages

            parts = [(st.weights_bytes, st.activation_peak_bytes, st.kv_cache_bytes) for st in stages(sym)]
            _STAGE_MEMORY[sym] = parts
    else:
        parts = [(sym.memory.weights_bytes, sym.memory.activation_peak_bytes, sym.memory.kv_cache_bytes)]
    pools = [_kv_pool(*part, profile, engine, typical_tokens, memory_utilization, running) for part in parts]
    fewest = min(pools, key=lambda p: p.blocks)
    limits = [p for p in pools if p.max_sequences is not None]
    if not limits:
        return fewest
    least = min(limits, key=lambda p: p.max_sequences or 0)
    return replace(fewest, max_sequences=least.max_sequences, state_limited=least.state_limited)


def _kv_pool(weights_expr: Any, activation_expr: Any, kv_expr: Any, profile: Any, engine: EngineProfile,
             typical_tokens: int, memory_utilization: float, running: int | None = None) -> KVPool:
    point = {B: sympy.Integer(1), S: sympy.Integer(engine.max_num_batched_tokens), C: sympy.Integer(0)}
    weights = float(weights_expr)
    activation = float(sympy.sympify(activation_expr).xreplace(point))
    kv = sympy.sympify(kv_expr)
    length = max(1, typical_tokens)
    at = lambda c: float(kv.xreplace({B: sympy.Integer(1), S: sympy.Integer(1), C: sympy.Integer(c)}))  # noqa: E731
    per_token = (at(length) - at(0)) / length
    # what a sequence holds whatever its length (a recurrent state): the one-token cache less that token's
    # KV, from the first token's slope (the mean slope over `length` is lower where sliding windows stop
    # growing, which is not a fixed state)
    state = max(0.0, at(0) - (at(1) - at(0)))
    if state < 1e-6 * max(per_token, 1.0):
        state = 0.0
    capacity = profile.memory_bytes
    if engine.memory_basis == "total":
        budget = capacity * memory_utilization - weights - activation
    else:
        budget = (capacity - weights - activation) * memory_utilization
    if budget <= 0:
        raise DeploymentError(
            f"no memory left for the KV cache: weights {weights / 2**30:.1f} GiB + activations "
            f"{activation / 2**30:.1f} GiB per GPU exceed {memory_utilization:.2f} of {capacity / 2**30:.0f} GiB; "
            "use more GPUs (tp/pp/dp/ep), quantization, or a larger device")
    if state <= 0:
        blocks = int(budget // (per_token * engine.block_size)) if per_token > 0 else 1 << 30
        return KVPool(blocks=blocks, bytes_per_token=per_token, budget_bytes=budget)
    # Hybrid: every running sequence holds its layers' fixed state besides its tokens' KV blocks (vLLM's
    # hybrid allocator gives each request one state page per recurrent layer group, out of the same
    # memory). Modelled as a static split at the typical request length: state for as many sequences
    # as the budget holds at that length (at most max_num_seqs, and the clients of a closed loop), the
    # rest as KV blocks.
    bound = min(engine.max_num_seqs, running or engine.max_num_seqs)
    sequences = min(bound, int(budget // (state + length * per_token)))
    left = budget - sequences * state
    blocks = int(left // (per_token * engine.block_size)) if per_token > 0 else 1 << 30
    return KVPool(blocks=blocks, bytes_per_token=per_token, budget_bytes=budget, state_bytes_per_sequence=state,
                  max_sequences=sequences, state_limited=sequences < bound)


def engine_graph_defaults(engine: EngineProfile, spec: ModelSpec, profile: Any,
                          options: Mapping[str, Any]) -> dict[str, Any]:
    """The serving engine's graph-changing defaults for this deployment, also when another engine's
    kernels cost the steps: whether it fuses the TP all-reduce with the residual add and RMSNorm (its
    `allreduce_fusion` knob, else deployment/allreduce_fusion.py) and, unless the deployment names
    one, its MoE exchange under attention DP + EP (deployment/moe_exchange.py). One resolve of the
    deployment serves both."""
    from ..deployment.config import Deployment, resolve

    resolved = resolve(Deployment.from_options({k: v for k, v in options.items() if k in DEPLOYMENT_KEYS}),
                       spec, profile)
    fused = engine.allreduce_fusion if engine.allreduce_fusion is not None else \
        resolve_allreduce_fusion(None, engine.name, spec.architecture, resolved)[0]
    exchange = options.get("moe_exchange") or resolve_moe_exchange(None, engine.name, resolved.ep_nodes > 1)[0]
    return {"allreduce_fusion": fused, "moe_exchange": exchange}


def fusion_note(engine: EngineProfile, architecture: str, resolved: Any) -> str:
    """Why the serving engine fuses (or not) the TP all-reduce with the residual add and RMSNorm on the
    `resolved` deployment: its `allreduce_fusion` knob when given, else its default. The step costs
    receive the choice as an explicit value and would call it the user's."""
    if engine.allreduce_fusion is not None:
        return f"all-reduce + RMSNorm fusion {'on' if engine.allreduce_fusion else 'off'} " \
               "(engine_args allreduce_fusion)"
    return resolve_allreduce_fusion(None, engine.name, architecture, resolved)[1]


def step_notes(per_role: Mapping[str, Sequence[str]]) -> list[str]:
    """The step costs' notes (deployment, calibration fallback, engine defaults) for the serving report:
    a note every pool shares once, the others prefixed with their pool."""
    roles = list(per_role)
    shared = [n for n in dict.fromkeys(per_role[roles[0]]) if all(n in per_role[r] for r in roles)]
    return shared + [f"{r}: {n}" for r in roles for n in dict.fromkeys(per_role[r]) if n not in shared]


def allreduce_fusion(engine: EngineProfile, spec: ModelSpec, profile: Any, options: Mapping[str, Any]) -> bool:
    """Whether `engine` runs this deployment's TP all-reduces fused with the residual add and RMSNorm."""
    return bool(engine_graph_defaults(engine, spec, profile, options)["allreduce_fusion"])


def default_utilization(engine: EngineProfile, engine_args: Mapping[str, Any] | None, profile: Any, resolved: Any,
                        mtp: int) -> float:
    """The engine's memory utilization when the user sets none: SGLang computes its
    mem_fraction_static from the GPU's memory and the parallelism (sglang_memory.py); the other
    engines' defaults are constants of their profile."""
    if engine.name != "sglang" or "memory_utilization" in (engine_args or {}):
        return engine.memory_utilization
    attention_dp = resolved.experts_span_replicas  # SGLang --enable-dp-attention: tp_size counts every rank
    return sglang_mem_fraction_static(
        profile.memory_capacity_gib * 1024, tp_size=resolved.tp * (resolved.dp if attention_dp else 1),
        pp_size=resolved.pp, dp_size=resolved.dp if attention_dp else 1, dp_attention=attention_dp,
        chunked_prefill_size=engine.max_num_batched_tokens, speculative=mtp > 0)


# the setup's sympy work and the event loop allocate heavily: automatic collections would walk
# the process's millions of long-lived objects (torch, sympy) again and again (gc_pause.py)
@paused_gc()
def simulate(model: str | ModelSpec, *, device: str, engine: str = "vllm", concurrency: int | None = None,
             rate: float | None = None, trace: Any = None, num_requests: int | None = None, isl: int | None = None,
             osl: int | None = None, disagg: str | Mapping[str, Any] | None = None,
             engine_args: Mapping[str, Any] | None = None, seed: int = 0, mtp: int = 0,
             mtp_acceptance: float | Sequence[float] | None = None, prefix_hit_rate: float = 0.0, range_ratio: float = 0.0,
             warmup_requests: int = 0, record_steps: bool = False, num_hidden_layers: int | None = None,
             progress: Callable[[int, int], None] | None = None, kernels: str | None = None,
             fast_forward: bool = True, moe_skew: float = 0.0, **deployment: Any) -> ServingReport:
    """Simulate serving `model` on `device` with `engine` (vllm | sglang | trtllm).

    Arrivals: exactly one of `concurrency` (closed loop, all clients start together, `num_requests`
    in all, default 10 x concurrency), `rate` (Poisson, requests/s, default 1,000 requests) or
    `trace` (JSONL path or TraceEntry list). `isl`/`osl`: prompt and output tokens per request.
    `disagg`: "prefill: 2x tp4; decode: 1x tp4 pp2" (pools replace tp/dp/ep/pp; other deployment keywords
    apply to both; `bs<n>` caps the requests one rank of that pool runs at once, disagg.py). `engine_args`: engine knobs (engines.KNOBS). `mtp`/`mtp_acceptance`: MTP
    speculative decoding; `prefix_hit_rate`: share of each prompt found in the prefix cache;
    `range_ratio`: prompt/output lengths drawn uniformly in [L(1 - r), L(1 + r)] (seeded);
    `warmup_requests`: the first N requests are left out of the latency statistics;
    `num_hidden_layers`: simulate only the first N layers (quick looks, tests).
    `kernels`: the device profile's efficiency section the step costs use (`analyze(engine=...)`:
    vllm | sglang | trtllm | torch); default the serving engine's own (a profile without that
    section falls back to the nearest one, with a note). For what-ifs such as "vLLM's scheduler
    on plain PyTorch kernels" (`benchmarks/serving_fidelity.py --kernels torch`).
    `fast_forward=False`: step every worker one step (pp > 1: one batch) at a time instead of
    fast-forwarding runs of pure-decode steps (simulator.py, decode_ring.py): the slow reference
    path, for checking (same results up to float rounding).
    `moe_skew`: Zipf skew of MoE expert popularity in every step (`analyze(moe_skew=...)`; 0: uniform
    random routing, the default).
    Deployment keywords as `analyze` (tp, ep, dp, pp, moe_tp, quant, kv_cache_dtype, ...); dp > 1
    with the experts spanning the replicas (ep > 1, or moe_tp = tp·dp) is attention DP (ranks step
    together), dp > 1 with per-replica experts (ep 1, moe_tp unset) is independent replicas; pp > 1 splits
    the layers into stages with up to pp batches in flight (`pipeline.py`).
    """
    unknown = set(deployment) - set(DEPLOYMENT_KEYS)
    if unknown:
        raise InvalidArgumentError(f"unknown option(s) {sorted(unknown)}; accepted deployment options: "
                                   f"{', '.join(DEPLOYMENT_KEYS)}")
    profile_engine = engine_profile(engine, engine_args)
    if kernels is not None and kernels not in KERNEL_SECTIONS:
        raise InvalidArgumentError(f"unknown kernels {kernels!r}; accepted: {', '.join(KERNEL_SECTIONS)}")
    if isinstance(warmup_requests, bool) or not isinstance(warmup_requests, int) or warmup_requests < 0:
        raise InvalidArgumentError(f"warmup_requests must be an integer >= 0, got {warmup_requests!r}")
    workload = make_workload(concurrency=concurrency, rate=rate, trace=trace, num_requests=num_requests,
                             isl=isl, osl=osl, seed=seed, range_ratio=range_ratio)
    if isinstance(prefix_hit_rate, bool) or not isinstance(prefix_hit_rate, (int, float)) \
            or not 0 <= prefix_hit_rate < 1:
        raise InvalidArgumentError(f"prefix_hit_rate must be a fraction in [0, 1), got {prefix_hit_rate!r}")
    if mtp_acceptance is not None and not mtp:
        raise InvalidArgumentError(f"mtp_acceptance={mtp_acceptance!r} needs MTP drafts: pass mtp >= 1")
    speculative = SpeculativeDecoding(mtp, mtp_acceptance) if mtp else None
    pools = parse_disagg(disagg) if disagg is not None else None
    profile = load_device(device)
    spec = load_model(model, num_hidden_layers=num_hidden_layers)
    lengths = workload.lengths()
    longest = max(p + o for p, o in lengths)
    if spec.max_position_embeddings and longest > spec.max_position_embeddings:
        raise InvalidArgumentError(
            f"a request of {longest} tokens (prompt + output) exceeds {spec.name}'s context of "
            f"{spec.max_position_embeddings} tokens; accepted: prompt + output <= {spec.max_position_embeddings}")
    longest_prompt = max(p for p, _ in lengths)
    if not profile_engine.chunked_prefill and longest_prompt > profile_engine.max_num_batched_tokens:
        raise InvalidArgumentError(
            f"a prompt of {longest_prompt} tokens exceeds {profile_engine.name}'s max_num_batched_tokens="
            f"{profile_engine.max_num_batched_tokens} with chunked prefill off; accepted: "
            f"engine_args={{'max_num_batched_tokens': >= {longest_prompt}}} or {{'chunked_prefill': True}}")
    typical = round(sum(p + o for p, o in lengths) / len(lengths))
    roles = {"agg": None} if pools is None else pools
    worker_pools: dict[str, list[Worker]] = {}
    traces: dict[str, Any] = {}  # each pool's symbolic report (the time split's typical steps)
    gpus = 0
    per_token: dict[str, float] = {}
    per_sequence: dict[str, float] = {}  # hybrid models' fixed state per sequence, per GPU
    notes: list[str] = []
    context_notes: dict[str, list[str]] = {}
    descriptions = []
    for role, pool in roles.items():
        options = dict(deployment)
        if pool is not None:
            options.update(pool.deployment())
        if moe_skew:  # a cost knob of every step (analyze's moe_skew), not a deployment option
            options["moe_skew"] = moe_skew
        # the serving engine's fusion and MoE-exchange defaults, also when another engine's kernels cost the steps
        options.update(engine_graph_defaults(profile_engine, spec, profile, options))
        sym, costs = step_costs(spec, device=profile, engine=kernels or profile_engine.name,
                                mtp=mtp, table_tokens=max(16384, profile_engine.max_num_batched_tokens), **options)
        resolved = sym.context.deployment
        traces[role] = sym
        given = resolve_allreduce_fusion(options["allreduce_fusion"], profile_engine.name, spec.architecture,
                                         resolved)[1]  # how the step costs word the value passed to them
        context_notes[role] = [fusion_note(profile_engine, spec.architecture, resolved) if n == given else n
                               for n in sym.context.notes]
        fallbacks = sorted({f for op in sym.ops for f in op.fallbacks})
        if fallbacks:  # a precision the device lacks, costed at the next one it has (as analyze's summary says)
            context_notes[role].append(f"precision fallbacks on {profile.name}: {', '.join(fallbacks)}")
        utilization = options.get("memory_utilization") or default_utilization(
            profile_engine, engine_args, profile, resolved, mtp)
        kv = kv_pool(sym, profile, profile_engine, typical, utilization,
                     running=workload.concurrency if workload.kind == "closed" else None)
        per_token[role] = kv.bytes_per_token
        per_sequence[role] = kv.state_bytes_per_sequence
        need = longest + (1 + mtp) if profile_engine.policy == "no_evict" else \
            (max(p for p, _ in lengths) + 1 if role == "prefill" else longest)
        capacity = kv.blocks * profile_engine.block_size
        if kv.max_sequences == 0:
            raise DeploymentError(
                f"the memory left per GPU ({kv.budget_bytes / 2**30:.2f} GiB) holds no sequence's recurrent state "
                f"({kv.state_bytes_per_sequence / 2**20:.1f} MiB) beside its KV cache; accepted: more memory (more "
                "GPUs, quantization, memory_utilization)")
        if capacity < need:
            raise DeploymentError(
                f"the KV cache holds {capacity} tokens per rank ({kv.budget_bytes / 2**30:.2f} GiB free for it), "
                f"too small for one request of {need} tokens; accepted: a request that fits, or more memory "
                "(more GPUs, quantization, kv_cache_dtype='fp8', memory_utilization)")
        lockstep = resolved.experts_span_replicas  # attention DP: the ranks share the MoE layers' exchange
        replicas = (pool.workers if pool is not None else 1) * (1 if lockstep else resolved.dp)
        ranks_per_worker = resolved.dp if lockstep else 1
        own: dict[str, Any] = {} if pool is None else {
            k: v for k, v in (("max_num_seqs", pool.max_num_seqs), ("max_num_batched_tokens", pool.max_num_batched_tokens))
            if v is not None}
        pool_engine = replace(profile_engine, **own) if own else profile_engine  # the pool's own knobs (disagg.py)
        if role == "prefill" and not pool_engine.prefill_pool_async and "async_scheduling" not in (engine_args or {}):
            pool_engine = replace(pool_engine, async_scheduling=False)  # TensorRT-LLM's context servers (engines.py)
            notes.append(f"prefill: {profile_engine.name}'s context servers schedule without the overlap scheduler "
                         "(engines.py, 'Async scheduling'; --engine-arg async_scheduling=true to keep it)")
        if role != "decode" and not pool_engine.chunked_prefill and longest_prompt > pool_engine.max_num_batched_tokens:
            raise InvalidArgumentError(
                f"a prompt of {longest_prompt} tokens exceeds the {role} pool's max_num_batched_tokens="
                f"{pool_engine.max_num_batched_tokens} with chunked prefill off; accepted: tok<n> >= {longest_prompt}")
        # attention DP: SGLang divides its step budget (and a given max_num_seqs) among the ranks
        # (engines.py, "Attention-DP division"); a pool's `bs<n>` is already per rank
        seqs_given = "max_num_seqs" in (engine_args or {}) and (pool is None or pool.max_num_seqs is None)
        rank_engine = pool_engine.attention_dp_rank(ranks_per_worker, seqs_given)
        if rank_engine is not pool_engine:
            notes.append(f"{role}: {profile_engine.name} attention DP{ranks_per_worker}: per rank "
                         f"max_num_batched_tokens {rank_engine.max_num_batched_tokens}, max_num_seqs "
                         f"{rank_engine.max_num_seqs}, new_token_ratio {rank_engine.new_token_ratio:.3g}")
        if kv.max_sequences is not None:  # hybrid: each running sequence holds its recurrent state
            capped = kv.state_limited and kv.max_sequences < rank_engine.max_num_seqs
            if capped:
                rank_engine = replace(rank_engine, max_num_seqs=kv.max_sequences)
            bound = (f"what the memory holds beside their {typical}-token KV: max_num_seqs per rank capped at "
                     f"{kv.max_sequences}" if capped else "the most that run at once")
            notes.append(f"{role}: recurrent state {kv.state_bytes_per_sequence / 2**20:.1f} MiB per sequence per GPU "
                         f"beside {kv.bytes_per_token / 2**10:.2f} KiB per token, set apart for {kv.max_sequences} "
                         f"sequences ({bound})")
        workers = []
        pipelined = len(costs) > 1
        for w in range(replicas):
            # (a pipelined decode worker takes new requests into its next batch: no prebuilt step)
            ranks = [RankScheduler(rank_engine, kv.blocks, decode_tokens=1 + mtp,
                                   tokens_per_step=speculative.tokens_per_step if speculative else 1.0,
                                   prefix_hit_rate=float(prefix_hit_rate), role=role, prebuilt=not pipelined)
                     for _ in range(ranks_per_worker)]
            workers.append(Worker(name=f"{role}{w}", role=role, ranks=ranks, cost=costs[0], engine=pool_engine,
                                  stages=costs if pipelined else (),
                                  clock=StageClock(len(costs)) if pipelined else None))
        worker_pools[role] = workers
        gpus += replicas * (resolved.tp * resolved.pp * ranks_per_worker)
        label = resolved.describe()
        cap = "".join(f", {k} {v}" for k, v in own.items())
        descriptions.append(label if pool is None else f"{role}: {pool.workers}x [{label}{cap}]")
    total_gpus = gpus
    notes[:0] = step_notes(context_notes)

    transfers: dict[int, float] = {}  # prompt tokens -> seconds (a pure function of them: computed once each)

    def transfer(req: Any) -> float:
        seconds = transfers.get(req.prompt)
        if seconds is None:
            # the prompt's KV and, for hybrid models, the recurrent + conv state its prefill ended with
            shard = per_token["prefill"] * req.prompt + per_sequence["prefill"]
            seconds = transfers[req.prompt] = kv_transfer_s(shard, profile, total_gpus)
        return seconds

    if speculative is not None:
        notes.append(f"MTP: {mtp} draft token(s), {speculative.describe()}: "
                     f"{speculative.tokens_per_step:.3f} tokens per decode step (expected value)")
    front_end = worker_pools[entry_role(worker_pools)][0].engine.request_overhead_s  # where requests arrive
    if front_end > 0:
        notes.append(f"TTFT and E2E include the server's front end, {front_end * 1e3:g} ms per request (HTTP, "
                     "tokenization, streaming back: engine_args request_overhead_s)")
    if workload.kind == "closed" and workload.concurrency > 1 and not workload.range_ratio:
        notes.append("fixed prompt and output lengths: the clients, starting together, finish together and stay in "
                     "lock-step waves whose prompts prefill together (range_ratio, e.g. 0.1, spreads the lengths and "
                     "desynchronizes them, as benchmark_serving's --random-range-ratio does)")
    if pools is not None:
        notes.append("TTFT includes the KV transfer from the prefill to the decode worker")
    if kernels is not None and kernels != profile_engine.name:
        notes.append(f"step costs from the device profile's {kernels!r} kernel section, not {profile_engine.name}'s")
    if moe_skew:
        notes.append(f"MoE routing Zipf-skewed in every step (moe_skew {moe_skew:g}): fewer distinct experts per step "
                     "than uniform routing")
    notes.append(accuracy_note(spec.family_model_type, profile.name, profile_engine.name, "agg" if pools is None else "disagg"))
    result = simulate_workers(worker_pools, workload, transfer_s=transfer if pools is not None else (lambda r: 0.0),
                              record_steps=record_steps, progress=progress, fast_forward=bool(fast_forward))
    workload_info: dict[str, Any] = {"kind": workload.kind, "num_requests": workload.num_requests, "seed": seed,
                                     "warmup_requests": warmup_requests}
    if workload.kind != "trace":
        workload_info.update(isl=workload.isl, osl=workload.osl, range_ratio=workload.range_ratio)
    if workload.kind == "closed":
        workload_info["concurrency"] = workload.concurrency
    if workload.kind == "poisson":
        workload_info["rate"] = workload.rate
    return ServingReport.build(result, model=spec.name, device=profile.name, engine=profile_engine.name,
                               deployment="; ".join(descriptions), num_gpus=total_gpus, workload=workload_info,
                               block_size=profile_engine.block_size, notes=notes, warmup=warmup_requests,
                               time_split=partial(split_time, result.phases, traces, result.requests, 1 + mtp))
