"""The public Python API: `analyze`, `op_cost`, `load_model`, `list_models`, `list_devices`,
`clear_cache`.

Owns argument resolution and validation for user calls (model argument, device, shape point,
overrides, deployment keywords) — every bad value is a `TensorCastError` naming it and the
accepted values — and delegates the work to `analysis.py`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .analysis import ExecutionOptions, analyze_spec, clear_cache  # noqa: F401  (public: re-exported)
from .backends.counts import Counts
from .backends.device import DeviceProfile, device_names, load_device
from .backends.engines import transfer_note
from .backends.moe_tiles import kernel_note
from .backends.roofline import ExecutionMode, op_time
from .deployment.allreduce_fusion import check_allreduce_fusion, resolve_allreduce_fusion
from .deployment.config import Deployment, resolve
from .errors import InvalidArgumentError, TensorCastError, choices
from .models import registry
from .models.config_checks import check_spec
from .models.overrides import apply_overrides
from .models.spec import ModelSpec
from .report import Report
from .report.report import validate_point
from .speculative import SpeculativeDecoding, validate_mtp

if TYPE_CHECKING:
    import torch

# torch and transformers are imported where they are used (tracing, `op_cost`, a model's config
# read by transformers): a report rebuilt from the disk trace cache needs neither.
CUDA_GRAPH_MODES = ("auto", "always", "never")
MLA_FORMS = ("auto", "absorbed", "expanded")  # tensor_cast.ops.mla.MLA_FORMS (checked equal by a test)
# parallelism / quantization keywords: tp, ep, dp, pp, quant, kv_cache_dtype, nodes, gpus_per_node,
# quantize_lm_head, quantize_router, memory_utilization, keep_unquantized (tensor_cast/deployment/config.py)
DEPLOYMENT_KEYS: tuple[str, ...] = Deployment.keys()


def load_model(model: str | ModelSpec, *, num_hidden_layers: int | None = None,
               per_layer_config: Mapping[Any, Mapping[str, Any]] | None = None,
               trust_remote_code: bool = False, cache: bool = True) -> ModelSpec:
    """The typed spec of a model id / directory / config, with overrides applied. `cache`: read a
    local or registry config's spec from the disk cache, and store it there (tensor_cast/cache/)."""
    from .cache.specs import load_spec

    spec = load_spec(model, trust_remote_code=trust_remote_code, cache=cache)
    spec = apply_overrides(spec, num_hidden_layers=num_hidden_layers, per_layer_config=per_layer_config)
    check_spec(spec)  # overrides may give a layer heads its KV heads do not divide
    return spec


def analyze(model: str | ModelSpec, *, device: str | DeviceProfile, batch_size: int | None = None,
            query_len: int | None = None, context_len: int = 0, num_hidden_layers: int | None = None,
            per_layer_config: Mapping[Any, Mapping[str, Any]] | None = None, symbolic: bool = False,
            fuse: bool = True, cuda_graphs: str = "auto", dump_graph: str | Path | None = None,
            trust_remote_code: bool = False, mla_form: str = "auto", mtp: int = 0,
            mtp_acceptance: float | Sequence[float] | None = None, moe_skew: float = 0.0, engine: str | None = None,
            cache: bool = True, graph_dumps: bool = False, allreduce_fusion: bool | str | None = None,
            **deployment: Any) -> Report:
    """Predict one forward step of `model` on `device`.

    Graph dumps (the graph as text after capture and after each pass) are rendered only when
    asked for: `graph_dumps=True` puts them in `report.graph_dumps`, `dump_graph=DIR` also
    writes them there.

    A step processes `query_len` new tokens for each of `batch_size` sequences that already hold
    `context_len` tokens in the KV cache: prefill is `query_len=prompt, context_len=0`, decode is
    `query_len=1, context_len=tokens so far`. With `symbolic=True` the report's totals are sympy
    expressions in B, S, C and `report.evaluate(...)` / `report.sweep(...)` give concrete values.

    `mla_form`: how MLA attention is computed (auto: absorbed for decode-sized steps, expanded
    for prefill, absorbed at every step under DeepSeek sparse attention, as serving engines do |
    absorbed | expanded). `mtp=N` adds N MTP draft passes
    (speculative decoding, models that ship MTP layers); a decode step (`query_len=1`) then
    verifies 1 + N tokens per sequence, and the report gives the time per output token for the
    acceptance `mtp_acceptance`: one rate for every draft, one per draft position, or None for the default
    schedule (0.85 for the first draft, falling at later ones: `tensor_cast/speculative.py`; the MTP
    layers themselves: `tensor_cast/models/mtp.py`).

    Deployment keywords: `tp`, `ep`, `dp`, `pp` (world size = tp·dp·pp), `moe_tp`,
    `quant` (default: the checkpoint's own quantization_config, else none), `kv_cache_dtype`,
    `nodes`, `gpus_per_node`, `quantize_lm_head`, `quantize_router`, `memory_utilization`,
    `keep_unquantized` (module patterns left in the model dtype, e.g. ("mtp.*",); each must name a module).
    `batch_size` is the whole deployment's: each of the dp replicas runs ceil(batch_size / dp)
    sequences (the symbolic B is the per-replica batch). Times and memory are per GPU.
    Attention and dense layers run tensor-parallel over tp in dp replicas; MoE routed experts are
    split over the tp·dp GPUs of a stage as a moe_tp x ep grid (E/ep experts per rank, each with
    1/moe_tp of its intermediate columns; moe_tp·ep = tp·dp, default moe_tp = tp·dp / ep), or,
    with ep=1 and moe_tp unset, tensor-parallel over tp within each replica. So `tp=1, dp=8,
    ep=8` is attention DP8 + MoE EP8 (SGLang `--tp 8 --enable-dp-attention --dp 8 --ep 8`):
    tokens reach their experts by the engine's exchange, `moe_exchange="all_to_all"` (a dispatch and a
    combine: DeepEP, TensorRT-LLM's within one NVLink domain) or `"allgather"` (all-gather +
    reduce-scatter: vLLM's and SGLang's default, TensorRT-LLM's across nodes); None, the default, takes
    the engine's (deployment/moe_exchange.py); `tp=8, ep=8`
    (vLLM `--tensor-parallel-size 8 --enable-expert-parallel`) all-reduces instead; `tp=4, ep=2`
    is TensorRT-LLM's moe_tp 2 x moe_ep 2 (SGLang `--tp 4 --ep-size 2`); `tp=1, dp=4, ep=1,
    moe_tp=4` is attention DP4 with MoE TP4 (TensorRT-LLM `enable_attention_dp`, tp_size 4,
    ep_size 1): tokens are all-gathered over the replicas and the outputs reduce-scattered.

    `moe_skew` models hot experts in MoE layers: the i-th most popular expert is picked with Zipf
    weight i^-skew (0: uniform routing, the default; 1: classic Zipf, the i-th expert is picked i
    times less often than the first, each at most once per token). It changes how many experts'
    weights a step reads (fewer distinct experts are hit), not the FLOPs.

    `engine` (vllm | sglang | trtllm | torch; default vllm) picks the device profile's efficiency
    section calibrated for that engine's kernels; a profile without one uses the nearest
    calibrated engine's and the report says so (`report.engine`, `report.context.notes`).

    `allreduce_fusion` (True | False | None = the engine's default; "on" | "off" | "auto"): under
    tensor parallelism, run each TP all-reduce with the residual add and RMSNorm after it as one
    kernel (`passes/fuse_allreduce_add_rms_norm.py`). Defaults (tensor_cast/deployment/
    allreduce_fusion.py): on for trtllm, off for vllm (its `pass_config.fuse_allreduce_rms`) and
    torch, on for sglang only for the MoE architectures it enables it for.

    `cache`: reuse the device-independent results of an earlier trace of the same model and
    options from the disk cache (tensor_cast/cache/; `TENSOR_CAST_CACHE_DIR` moves it,
    `TENSOR_CAST_CACHE=0` turns it off) and store new ones there. A hit gives the same report.
    """
    for flag, value in (("symbolic", symbolic), ("fuse", fuse), ("trust_remote_code", trust_remote_code)):
        if not isinstance(value, bool):
            raise InvalidArgumentError(f"{flag} must be True or False, got {value!r}")
    if per_layer_config is not None and not isinstance(per_layer_config, Mapping):
        raise InvalidArgumentError(
            f"per_layer_config must be a mapping {{layer: {{field: value}}}}, got {type(per_layer_config).__name__} "
            f"{per_layer_config!r}")
    unknown = set(deployment) - set(DEPLOYMENT_KEYS)
    if unknown:
        raise InvalidArgumentError(
            f"unknown option(s) {sorted(unknown)}; accepted deployment options: {choices(DEPLOYMENT_KEYS) or 'none'}")
    request = Deployment.from_options(deployment)
    check_allreduce_fusion(allreduce_fusion)  # before loading anything
    if cuda_graphs not in CUDA_GRAPH_MODES:
        raise InvalidArgumentError(f"cuda_graphs must be one of {choices(CUDA_GRAPH_MODES)}, got {cuda_graphs!r}")
    if mla_form not in MLA_FORMS:
        raise InvalidArgumentError(f"mla_form must be one of {choices(MLA_FORMS)}, got {mla_form!r}")
    validate_mtp(mtp, mtp_acceptance)
    if mtp_acceptance is not None and not mtp:
        raise InvalidArgumentError(f"mtp_acceptance={mtp_acceptance!r} needs MTP drafts: pass mtp >= 1")
    _check_moe_skew(moe_skew)
    point, notes = None, []
    if not symbolic:
        if batch_size is None or query_len is None:
            raise InvalidArgumentError("batch_size and query_len are required (or pass symbolic=True)")
        point = {"batch_size": batch_size, "query_len": query_len, "context_len": context_len}
        validate_point(point)
        if mtp and query_len == 1:  # a decode step with MTP verifies the previous step's drafts
            point["query_len"] = 1 + mtp
            notes.append(f"MTP decode step: the main model verifies 1 + {mtp} tokens per sequence (query_len {1 + mtp})")
    profile = load_device(device, engine)
    if profile.engine_note:
        notes.append(profile.engine_note)
    transferred = transfer_note(profile)
    if transferred:
        notes.append(transferred)
    spec = load_model(model, num_hidden_layers=num_hidden_layers, per_layer_config=per_layer_config,
                      trust_remote_code=trust_remote_code, cache=cache)
    # the time per output token is a decode figure: a prefill step costs the drafts, and says so
    decode = symbolic or query_len == 1
    speculative = SpeculativeDecoding(mtp, mtp_acceptance) if mtp and decode else None
    if mtp and not decode:
        notes.append(f"MTP on a prefill step: the {mtp} draft pass(es) over the prompt are costed; the time per "
                     "output token is a decode figure (query_len 1) and is not given")
    resolved = resolve(request, spec, profile)
    fused_reduce, why = resolve_allreduce_fusion(allreduce_fusion, profile.engine_requested or "vllm",
                                                 spec.architecture, resolved)
    fused_reduce = fused_reduce and resolved.tp > 1 and fuse
    if fused_reduce:  # said when it changes the graph
        notes.append(why)
    if any(layer.mlp.kind == "moe" for layer in spec.layers):
        moe_note = kernel_note(profile.architecture, resolved.moe_quant or resolved.quant, profile.efficiency)
        if moe_note:
            notes.append(moe_note)
    options = ExecutionOptions(fuse=fuse, cuda_graphs=cuda_graphs, mla_form=mla_form, mtp=mtp,
                               deployment=resolved.trace_options(), moe_skew=float(moe_skew),
                               allreduce_fusion=fused_reduce)
    warnings = ignored_options(spec, moe_skew=moe_skew, mla_form=mla_form, request=request)
    return analyze_spec(spec, profile, options=options, point=point, dump_graph_dir=dump_graph, notes=tuple(notes),
                        speculative=speculative, deployment=resolved, warnings=warnings,
                        cache=cache, graph_dumps=graph_dumps)


def ignored_options(spec: ModelSpec, *, moe_skew: float, mla_form: str, request: Deployment) -> tuple[str, ...]:
    """Options given that do not apply to this model: said, not silently dropped."""
    kinds = {layer.attention.kind for layer in spec.layers}
    has_moe = any(layer.mlp.kind == "moe" for layer in spec.layers)
    found = []
    if moe_skew and not has_moe:
        found.append(f"moe_skew={moe_skew:g} is ignored: {spec.name} has no MoE layers")
    if mla_form != "auto" and "mla" not in kinds:
        found.append(f"mla_form={mla_form!r} is ignored: {spec.name} has no MLA attention")
    if request.quantize_router and not has_moe:
        found.append(f"quantize_router is ignored: {spec.name} has no MoE router")
    return tuple(found)


def _check_moe_skew(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"moe_skew must be a finite number >= 0 (0: uniform routing), got {value!r}")


@dataclass(frozen=True)
class OpCost:
    op: str
    kind: str
    counts: Counts
    flops: float
    bytes: float
    time_s: float
    compute_s: float
    memory_s: float
    overhead_s: float
    bound: str
    latency_s: float = 0.0  # kernel latency + non-overlapped compute/memory (time = max + latency + overhead)
    engine: str = ""  # the efficiency section used (backends/engines.py)
    engine_note: str = ""  # set when another engine's section stood in for the one asked for


def _meta(value: Any) -> Any:
    import torch

    if isinstance(value, torch.Tensor):
        return value if value.device.type == "meta" else value.to("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_meta(v) for v in value)
    return value




def _describe_args(args: Any) -> str:
    import torch

    def one(value: Any) -> str:
        if isinstance(value, torch.Tensor):
            return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
        if isinstance(value, (list, tuple)):
            return "[" + ", ".join(one(v) for v in value) + "]"
        return repr(value)

    return ", ".join(one(a) for a in args)


def _tensors(value: Any) -> list[torch.Tensor]:
    import torch

    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def _resolve_op(op: Any) -> Any:
    """An op given by name ('aten.mm', 'aten.mm.default', 'tensor_cast.moe') -> its torch op."""
    import torch

    if not isinstance(op, str):
        return op
    parts = op.removeprefix("torch.ops.").replace("::", ".").split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise InvalidArgumentError(f"op name {op!r} is not 'namespace.op' or 'namespace.op.overload' "
                                   "(e.g. 'aten.mm', 'aten.mm.default', 'tensor_cast.attention')")
    try:
        found = getattr(getattr(torch.ops, parts[0]), parts[1])
        return getattr(found, parts[2]) if len(parts) == 3 else found
    except (AttributeError, RuntimeError):
        raise InvalidArgumentError(f"no torch op named {op!r} (e.g. 'aten.mm', 'aten.mm.default', "
                                   "'tensor_cast.attention')") from None


def op_cost(op: Any, *args: Any, device: str | DeviceProfile, cuda_graphs: str = "never", moe_skew: float = 0.0,
            mla_form: str = "auto", engine: str | None = None, **kwargs: Any) -> OpCost:
    """Cost one call of a torch `OpOverload` (aten or tensor_cast; or its name, 'aten.mm') with meta
    tensors as arguments. `moe_skew` is the cost-only MoE routing skew (see `analyze`), read by the
    MoE and EP exchange ops; `mla_form` the cost-only MLA kernel form (see `analyze`), read by
    `tensor_cast.mla_attention`; `engine` picks the device's efficiency section (default vllm; see `analyze`).

    Arguments the op itself rejects (wrong count, types or shapes) are the caller's error
    (`InvalidArgumentError`). Once the op has accepted them, a failing cost rule or timing model
    is a bug in tensor_cast: a `RuntimeError` naming the op and the arguments, with the cause
    chained.
    """
    import torch

    import tensor_cast.ops  # noqa: F401  (custom ops registered)

    from .backends.formulas import OpCall, lookup, tensor_infos
    from .backends.formulas.registry import CostKnobs

    if cuda_graphs not in CUDA_GRAPH_MODES:
        raise InvalidArgumentError(f"cuda_graphs must be one of {choices(CUDA_GRAPH_MODES)}, got {cuda_graphs!r}")
    if mla_form not in MLA_FORMS:
        raise InvalidArgumentError(f"mla_form must be one of {choices(MLA_FORMS)}, got {mla_form!r}")
    op = _resolve_op(op)
    if isinstance(op, torch._ops.OpOverloadPacket):
        op = op.default
    entry = lookup(op)
    profile = load_device(device, engine)
    meta_args, meta_kwargs = _meta(args), _meta(kwargs)
    for position, tensor in enumerate(t for t in _tensors((meta_args, meta_kwargs))):
        if tensor.numel() == 0:
            raise InvalidArgumentError(f"{entry.name}: tensor argument {position} has shape {tuple(tensor.shape)}, "
                                       "with no elements; op_cost needs non-empty tensors")
    try:
        result = op(*meta_args, **meta_kwargs)
    except Exception as exc:
        raise InvalidArgumentError(f"{entry.name} rejected these arguments: {str(exc).splitlines()[0]}") from None
    outputs = result if isinstance(result, (list, tuple)) else (result,)
    call = OpCall(op=op, args=tensor_infos(meta_args), kwargs=tensor_infos(meta_kwargs),
                  outputs=tuple(tensor_infos(o) for o in outputs if isinstance(o, torch.Tensor)),
                  knobs=CostKnobs(moe_skew=float(moe_skew), mla_form=mla_form))
    try:
        counts = entry.rule(call)
        timing = op_time(counts, entry.kind, profile, ExecutionMode(cuda_graphs=cuda_graphs))
    except TensorCastError:
        raise
    except Exception as exc:
        raise RuntimeError(f"tensor_cast bug: costing {entry.name}({_describe_args(meta_args)}) on {profile.name} "
                           f"failed: {type(exc).__name__}: {exc}") from exc
    values = [float(v) for v in (timing.compute_s, timing.memory_s, timing.comm_s, timing.overhead_s)]
    from .report.report import _bound

    return OpCost(op=entry.name, kind=entry.kind, counts=counts, flops=float(counts.total_flops),
                  bytes=float(counts.bytes), time_s=float(timing.time_s), compute_s=values[0], memory_s=values[1],
                  overhead_s=values[3], bound=_bound(*values), latency_s=float(timing.kernel_latency_s),
                  engine=profile.engine, engine_note=profile.engine_note)


def list_models() -> list[str]:
    return registry.ids()


def list_devices() -> list[str]:
    return device_names()
