"""A deployment: how a model is split over GPUs and in which number formats it runs.

Owns:
- `Deployment`: what the user asked for (tp, ep, dp, pp, quant, kv_cache_dtype, nodes,
  gpus_per_node, and whether lm_head / the MoE router are quantized), with type checks;
- `resolve(deployment, spec, profile) -> ResolvedDeployment`: checked against the model (tp must
  divide the heads, ep the experts, ...) and the device (the node size), with every default made
  concrete: the checkpoint's own quantization, the world size, which groups span nodes, the
  pipeline stages;
- `TraceDeployment`: the part that changes the traced graph (sharding, quantization, collective
  placement), which the trace cache keys on; pipeline stages and DP replicas do not retrace.

Rank layout (Megatron / vLLM order): TP innermost, then DP, then PP — rank
`r = (pp_i * dp + dp_i) * tp + tp_i`; an EP group is the tp·dp ranks of one pipeline stage. Errors
are `DeploymentError`s naming the bad value and the accepted ones. Never touches a graph.

How tp, dp, ep and moe_tp combine (world = tp·dp·pp GPUs):
- attention (and dense MLPs, embedding, lm_head) runs tensor-parallel over `tp` ranks, in `dp`
  data-parallel replicas, each with ceil(batch / dp) sequences and their KV cache;
- MoE layers split the routed experts over the ranks of a stage as a moe_tp x ep grid: `ep`
  groups of E/ep experts, each expert's intermediate split over `moe_tp` ranks (TensorRT-LLM's
  `moe_expert_parallel_size` x `moe_tensor_parallel_size`, whose product must be its tp_size;
  SGLang `--tp N --ep-size E`: moe_tp = N / E). Accepted: moe_tp·ep = tp·dp (the experts span
  the whole stage; the default moe_tp = tp·dp / ep when ep > 1), or ep = 1 with moe_tp = tp
  (the default without ep: every DP replica holds all experts, split over its own tp ranks).
  Shared experts stay tensor-parallel over tp.
- how tokens reach the experts (`passes/insert_ep_collectives.py`): with dp = 1 every rank holds
  every token and the partial outputs are all-reduced over tp; with dp > 1 and moe_tp = 1 the
  engine's exchange ("attention DP + EP MoE", `moe_exchange`: an all_to_all dispatch and combine,
  or an all-gather and reduce-scatter, vLLM's and SGLang's default; moe_exchange.py); with dp > 1 and moe_tp > 1 an
  all-gather of the replicas' tokens and a reduce-scatter of the outputs (TensorRT-LLM's
  `AllGatherReduceScatter`, the one exchange it supports with MoE TP).
Engine equivalents: SGLang `--tp 8 --enable-dp-attention --dp 8 --ep 8` (8 GPUs) is tp=1, dp=8,
ep=8; vLLM `--data-parallel-size 8 --enable-expert-parallel` is the same; vLLM
`--tensor-parallel-size 8 --enable-expert-parallel` is tp=8, ep=8; TensorRT-LLM `tp_size 4,
moe_expert_parallel_size 2` is tp=4, ep=2, moe_tp=2, and with `enable_attention_dp` tp=1, dp=4,
ep=2, moe_tp=2.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import gcd
from typing import Any

from ..errors import DeploymentError, InvalidArgumentError, choices
from ..models.spec import GQA_KINDS, ModelSpec
from .moe_exchange import check_moe_exchange, resolve_moe_exchange
from .quantization import (
    NO_QUANT,
    SAME_WEIGHTS_AS,
    accepted_quant,
    engine_serves,
    kv_cache_bytes,
    scheme,
    scheme_from_hf,
    served_scheme,
)
from .tp_plan import TPRoles, sharded_norms, tp_roles

# Fraction of device memory an engine may use (vLLM `gpu_memory_utilization` default); the rest is
# the framework reserve: CUDA context, NCCL buffers, allocator fragmentation.
DEFAULT_MEMORY_UTILIZATION = 0.9


@dataclass(frozen=True)
class Deployment:
    """What the user asked for. `None` means "the default" (see `resolve`)."""

    tp: int = 1
    ep: int = 1
    dp: int = 1
    pp: int = 1
    moe_tp: int | None = None  # TP degree inside each routed expert; None: tp·dp / ep with ep > 1, else tp
    quant: str | None = None  # None: the checkpoint's own quantization_config, else unquantized
    kv_cache_dtype: str | None = None  # None: the model dtype
    nodes: int | None = None
    gpus_per_node: int | None = None  # None: the device profile's [interconnect] gpus_per_node
    quantize_lm_head: bool = False
    quantize_router: bool = False
    memory_utilization: float = DEFAULT_MEMORY_UTILIZATION
    moe_exchange: str | None = None  # attention DP + EP MoE: "all_to_all" | "allgather"; None: the engine's (moe_exchange.py)
    # module patterns left in the model dtype beside the checkpoint's own (fnmatch over tensor_cast's module
    # paths, e.g. "mtp.*": the MTP block NVIDIA's NVFP4 DeepSeek-R1 checkpoints keep BF16); each must name a
    # quantizable module (passes/check_kept_unquantized.py)
    keep_unquantized: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_moe_exchange(self.moe_exchange)
        object.__setattr__(self, "keep_unquantized", _patterns("keep_unquantized", self.keep_unquantized))
        for name in ("tp", "ep", "dp", "pp"):
            _positive_int(name, getattr(self, name))
        for name in ("moe_tp", "nodes", "gpus_per_node"):
            if getattr(self, name) is not None:
                _positive_int(name, getattr(self, name))
        for name in ("quantize_lm_head", "quantize_router"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidArgumentError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.quant is not None and (not isinstance(self.quant, str) or (
                self.quant.lower() not in NO_QUANT and self.quant.lower() not in accepted_quant())):
            raise DeploymentError(f"unknown quant {self.quant!r}; accepted: {choices(accepted_quant())}")
        if self.kv_cache_dtype is not None:
            if not isinstance(self.kv_cache_dtype, str):
                raise DeploymentError(f"kv_cache_dtype must be a string, got {self.kv_cache_dtype!r}")
            kv_cache_bytes(self.kv_cache_dtype)
        u = self.memory_utilization
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 0 < u <= 1:
            raise InvalidArgumentError(f"memory_utilization must be a fraction in (0, 1], got {u!r}")

    @property
    def world_size(self) -> int:
        return self.tp * self.dp * self.pp

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Deployment:
        unknown = set(options) - set(cls.keys())
        if unknown:
            raise InvalidArgumentError(f"unknown deployment option(s) {sorted(unknown)}; accepted: {choices(cls.keys())}")
        return cls(**{k: v for k, v in options.items() if v is not None})


def _patterns(name: str, value: Any) -> tuple[str, ...]:
    """A tuple of non-empty module-name patterns (one string is one pattern)."""
    items = (value,) if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(v, str) and v.strip() for v in items):
        raise InvalidArgumentError(f"{name} must be module-name patterns (non-empty strings, e.g. 'mtp.*'), got {value!r}")
    return tuple(v.strip() for v in items)


def _positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class TraceDeployment:
    """The deployment values that change the traced graph (the trace cache keys on them)."""

    tp: int = 1
    ep: int = 1
    moe_tp: int = 1  # TP degree inside each routed expert (config.py docstring)
    quant: str = "none"  # a quantization.SCHEMES key or "none"
    not_converted: tuple[str, ...] = ()  # module patterns left unquantized (the checkpoint's and keep_unquantized)
    keep_unquantized: tuple[str, ...] = ()  # the user's among them: each must name a module (check_kept_unquantized)
    moe_quant: str | None = None  # the routed experts' scheme when the checkpoint stores them apart; None: quant
    quantize_lm_head: bool = False
    quantize_router: bool = False
    kv_cache_bytes: Any = None  # bytes per cached K/V element; None: the model dtype
    tp_nodes: int = 1  # nodes one TP group spans
    ep_nodes: int = 1  # nodes one EP group spans
    ep_dp: int = 1  # attention-DP replicas the experts span (dp when moe_tp·ep = tp·dp; DP alone does not retrace)
    row_parallel: tuple[str, ...] = ()  # module patterns whose outputs are TP partial sums (tp_plan.py)
    replicated: tuple[str, ...] = ()  # module patterns every TP rank holds whole, reading reduced sums (tp_plan.py)
    sharded_norms: tuple[tuple[str, str, str], ...] = ()  # (module pattern, op, method): norms over TP-split channels
    moe_exchange: str = "all_to_all"  # dp > 1, moe_tp = 1: all_to_all or allgather (moe_exchange.py)

    @property
    def sharded(self) -> bool:
        return self.tp > 1 or self.ep > 1 or self.moe_tp > 1


@dataclass(frozen=True)
class ResolvedDeployment:
    request: Deployment
    tp: int
    ep: int
    dp: int
    pp: int
    moe_tp: int
    quant: str
    quant_source: str  # "user" | "checkpoint" | "none"
    not_converted: tuple[str, ...]
    kv_cache_dtype: str
    kv_cache_bytes: Any
    gpus_per_node: int
    nodes: int
    tp_nodes: int
    ep_nodes: int
    pp_nodes: int  # nodes a stage-to-stage send/recv crosses (1 or 2)
    stages: tuple[tuple[int, ...], ...]  # real layer indices of each pipeline stage
    row_parallel: tuple[str, ...] = ()
    replicated: tuple[str, ...] = ()
    sharded_norms: tuple[tuple[str, str, str], ...] = ()
    notes: tuple[str, ...] = ()
    moe_exchange: str = "all_to_all"  # the exchange of attention-DP + EP MoE layers (moe_exchange.py)
    moe_quant: str | None = None  # the routed experts' scheme when the checkpoint stores them apart (DeepSeek-V4)

    @property
    def world_size(self) -> int:
        return self.tp * self.dp * self.pp

    @property
    def memory_utilization(self) -> float:
        return self.request.memory_utilization

    def trace_options(self) -> TraceDeployment:
        return TraceDeployment(
            tp=self.tp, ep=self.ep, moe_tp=self.moe_tp, quant=self.quant, not_converted=self.not_converted,
            keep_unquantized=self.request.keep_unquantized, moe_quant=self.moe_quant,
            quantize_lm_head=self.request.quantize_lm_head, quantize_router=self.request.quantize_router,
            kv_cache_bytes=self.kv_cache_bytes, tp_nodes=self.tp_nodes, ep_nodes=self.ep_nodes,
            ep_dp=self.dp if self.experts_span_replicas else 1, row_parallel=self.row_parallel,
            replicated=self.replicated, sharded_norms=self.sharded_norms,
            moe_exchange=self.token_exchange or "all_to_all")

    @property
    def token_exchange(self) -> str | None:
        """The exchange by which the MoE layers move tokens between attention-DP ranks, `moe_exchange`,
        where one applies (dp > 1 with whole experts, moe_tp = 1; MoE TP across replicas always
        all-gathers, dp = 1 all-reduces), else None."""
        return self.moe_exchange if self.experts_span_replicas and self.moe_tp == 1 else None

    @property
    def experts_span_replicas(self) -> bool:
        """Whether the routed experts are split over the ranks of all dp replicas (moe_tp·ep = tp·dp)."""
        return self.dp > 1 and self.moe_tp * self.ep == self.tp * self.dp

    def describe(self) -> str:
        parts = [f"{self.world_size} GPU{'s' if self.world_size > 1 else ''}"
                 + (f" ({self.nodes} nodes x {self.gpus_per_node})" if self.nodes > 1 else "")]
        for name in ("tp", "ep", "dp", "pp"):
            if getattr(self, name) > 1:
                parts.append(f"{name.upper()}{getattr(self, name)}")
        if self.ep > 1 or self.experts_span_replicas or self.moe_tp != self.tp:
            if self.dp == 1:
                exchange = "outputs all-reduced"
            else:
                exchange = "all_to_all dispatch/combine" if self.token_exchange == "all_to_all" \
                    else "all-gather/reduce-scatter"
            split = " x ".join(f"{k}{v}" for k, v in (("TP", self.moe_tp), ("EP", self.ep)) if v > 1) or "TP1"
            parts.append(f"attention DP{self.dp} x TP{self.tp} + MoE {split} ({exchange})")
        parts.append(f"weights {self.quant if self.quant != 'none' else 'unquantized'}"
                     + (f", experts {self.moe_quant}" if self.moe_quant else "")
                     + (" (checkpoint)" if self.quant_source == "checkpoint" else "")
                     + (f", {' '.join(self.request.keep_unquantized)} unquantized" if self.request.keep_unquantized else ""))
        parts.append(f"KV cache {self.kv_cache_dtype}")
        return ", ".join(parts)


# ---- checks against the model ----------------------------------------------------------------
def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _common(values: Iterable[int]) -> int:
    out = 0
    for v in values:
        out = gcd(out, v)
    return out


# Families whose layers TP cannot shard the way engines do without an op this model lacks.
TP_UNSUPPORTED = {
    "olmoe": "transformers' OlmoeAttention builds its q norm over hidden_size, not over the heads, so a rank's "
             "attention with heads / tp cannot be built",
    "stablelm": "transformers' StableLmAttention derives head_dim from hidden_size / num_attention_heads, so a "
                "rank's attention with heads / tp cannot be built",
    "helium": "transformers' HeliumAttention builds o_proj as hidden_size x hidden_size, not from the heads, so a "
              "rank's attention with heads / tp cannot be built",
}


def _check_tp(spec: ModelSpec, tp: int) -> None:
    if tp == 1:
        return
    if spec.model_type in TP_UNSUPPORTED:
        raise DeploymentError(f"tp={tp} is not supported for model_type {spec.model_type!r}: "
                              f"{TP_UNSUPPORTED[spec.model_type]}; accepted tp: 1 (use dp to scale out)")
    checks: list[tuple[str, int]] = []  # (what, size) that tp must divide
    for layer, _ in spec.layer_kinds():
        a = layer.attention
        if a.kind in (*GQA_KINDS, "mla", "compressed"):
            checks.append(("num_attention_heads", a.num_heads))
        if a.kind == "compressed" and a.compressed is not None:  # DeepSeek-V4: each rank holds whole output groups
            checks.append(("o_groups", a.compressed.o_groups))
        if a.kind == "mamba" and a.mamba is not None:  # vLLM MambaMixer2: heads split, groups split unless one
            checks += [("mamba_num_heads", a.mamba.num_heads),
                       *((("n_groups", a.mamba.n_groups),) if a.mamba.n_groups > 1 else ())]
        if a.kind == "linear" and a.linear is not None:
            checks += [("linear_num_key_heads", a.linear.num_key_heads),
                       ("linear_num_value_heads", a.linear.num_value_heads)]
        if layer.mlp.kind == "dense":
            checks.append(("intermediate_size", layer.mlp.intermediate_size))
        moe = layer.mlp.moe if layer.mlp.kind == "moe" else None
        if moe is not None and moe.shared_intermediate_size:
            checks.append(("shared_expert_intermediate_size", moe.shared_intermediate_size))
    for what, size in checks:
        if size % tp:
            valid = divisors(_common(s for _, s in checks))
            raise DeploymentError(f"tp={tp} does not divide {what}={size}; valid tp: {choices(valid)}")
    for layer, _ in spec.layer_kinds():
        a = layer.attention
        if a.kind in GQA_KINDS and a.num_kv_heads % tp and tp % a.num_kv_heads:
            valid = [d for d in divisors(a.num_heads) if a.num_kv_heads % d == 0 or d % a.num_kv_heads == 0]
            raise DeploymentError(
                f"tp={tp} neither divides num_key_value_heads={a.num_kv_heads} nor is a multiple of it (each KV "
                f"head must be split evenly or replicated tp/num_kv_heads times); valid tp: {choices(valid)}")


def _moe_layers(spec: ModelSpec) -> list[Any]:
    return [layer.mlp.moe for layer, _ in spec.layer_kinds() if layer.mlp.kind == "moe" and layer.mlp.moe]


def _check_moe(spec: ModelSpec, tp: int, dp: int, ep: int, moe_tp: int | None) -> int:
    """The TP degree inside each routed expert (moe_tp), checked: moe_tp·ep = tp·dp (the experts
    span the stage) or ep = 1 with moe_tp = tp (each replica holds every expert); ep divides every
    MoE layer's experts, moe_tp every expert's intermediate size."""
    moes = _moe_layers(spec)
    stage = tp * dp
    if not moes:
        if ep > 1 or (moe_tp is not None and moe_tp != tp):
            what, accepted = (f"ep={ep}", "ep: 1") if ep > 1 else (f"moe_tp={moe_tp}", f"moe_tp: tp = {tp}")
            raise DeploymentError(f"{what} needs MoE layers; {spec.name} has none (accepted {accepted})")
        return tp
    experts = _common(m.num_experts for m in moes)  # ep must divide every MoE layer's expert count
    if ep > 1 and stage % ep:
        valid = [d for d in divisors(stage) if experts % d == 0]
        hint = f" (for {ep} GPUs: tp={ep} ep={ep}, or dp={ep} ep={ep} for attention DP)" if stage == 1 else ""
        raise DeploymentError(f"ep={ep} does not divide the tp·dp = {stage} GPUs of a pipeline stage (experts split "
                              f"over them as moe_tp x ep); valid ep: {choices(valid)}{hint}")
    if moe_tp is None:
        moe_tp = stage // ep if ep > 1 else tp
    if moe_tp * ep != stage and not (ep == 1 and moe_tp == tp):
        accepted = f"{stage // ep}" + (f" or {tp}" if ep == 1 and tp != stage else "")
        raise DeploymentError(f"moe_tp={moe_tp} x ep={ep} must equal the tp·dp = {stage} GPUs the experts span"
                              + (" (or moe_tp = tp with ep 1: experts per DP replica)" if ep == 1 else "")
                              + f"; accepted moe_tp: {accepted}")
    for moe in moes:
        if moe.num_experts % ep:
            raise DeploymentError(f"ep={ep} does not divide num_experts={moe.num_experts}; valid ep: "
                                  f"{choices([d for d in divisors(stage) if experts % d == 0])}")
        if moe.expert_intermediate_size % moe_tp:
            valid = [d for d in divisors(stage) if _common(m.expert_intermediate_size for m in moes) % d == 0]
            raise DeploymentError(f"moe_tp={moe_tp} does not divide moe_intermediate_size="
                                  f"{moe.expert_intermediate_size}; valid moe_tp: {choices(valid)} (raise ep to "
                                  f"lower moe_tp = tp·dp / ep)")
    return moe_tp


def pipeline_stages(num_layers: int, pp: int) -> tuple[tuple[int, ...], ...]:
    """vLLM's split (`get_pp_indices`): equal stages, the remainder on the stages before the last
    (the last one also runs the final norm and lm_head)."""
    sizes = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        sizes[-i] += 1
    stages, start = [], 0
    for size in sizes:
        stages.append(tuple(range(start, start + size)))
        start += size
    return tuple(stages)


def _span(groups: Iterable[Sequence[int]], gpus_per_node: int) -> int:
    """Nodes the widest of these rank groups spans."""
    return max((len({r // gpus_per_node for r in g}) for g in groups), default=1)


def _gpus_per_node(profile: Any) -> int | None:
    interconnect = getattr(profile, "interconnect", None)
    return interconnect.gpus_per_node if interconnect is not None else None


def resolve(request: Deployment, spec: ModelSpec, profile: Any) -> ResolvedDeployment:
    tp, ep, dp, pp = request.tp, request.ep, request.dp, request.pp
    world = request.world_size
    if pp > spec.num_layers:
        raise DeploymentError(f"pp={pp} exceeds the {spec.num_layers} layers of {spec.name}; "
                              f"valid pp: 1..{spec.num_layers}")
    _check_tp(spec, tp)
    moe_tp = _check_moe(spec, tp, dp, ep, request.moe_tp)
    notes: list[str] = []

    # quantization: the user's, else the checkpoint's
    hf = scheme_from_hf(spec.quantization)
    if request.quant is not None and request.quant.lower() not in NO_QUANT:
        quant, source = scheme(request.quant.lower()).name, "user"
        not_converted = hf.not_converted if hf.scheme in (quant, SAME_WEIGHTS_AS.get(quant)) else ()
        served = served_scheme(quant, hf.scheme)
        if served != quant:
            notes.append(f"quant={quant} on a checkpoint stored as {served}: served as {served}, the engines "
                         f"take the checkpoint's granularity (vLLM and SGLang read its weight_block_size)")
            quant, source, not_converted = served, "checkpoint", hf.not_converted
    elif request.quant is None and hf.scheme is not None:
        quant, source, not_converted = hf.scheme, "checkpoint", hf.not_converted
        engine, architecture = getattr(profile, "engine_requested", "") or "", getattr(profile, "architecture", "")
        served_by = engine_serves(engine, architecture, quant)
        if served_by is not None:
            notes.append(f"engine {engine} on {architecture} serves the checkpoint's {quant} as "
                         f"{served_by.scheme} ({served_by.source})")
            quant = served_by.scheme
    else:
        quant, source, not_converted = "none", "none", ()
        if request.quant is None and hf.note:
            notes.append(hf.note)
    if request.keep_unquantized:
        if quant == "none":
            raise DeploymentError(f"keep_unquantized={list(request.keep_unquantized)} needs quantized weights: "
                                  f"{spec.name} runs unquantized here (pass quant= one of {choices(accepted_quant())})")
        not_converted = (*not_converted, *request.keep_unquantized)
    # the checkpoint's experts stored in their own scheme run as stored whenever its weights are served as stored
    moe_quant = hf.experts if source == "checkpoint" or (source == "user" and quant == hf.scheme) else None
    if quant != "none" and hf.scheme == quant and hf.note and request.quant is None:
        notes.append(hf.note)
    kv_name = request.kv_cache_dtype or "auto"
    kv_bytes = kv_cache_bytes(kv_name)
    if kv_bytes is None:
        kv_name = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32"}.get(spec.dtype, spec.dtype)

    # nodes
    gpn = request.gpus_per_node
    if gpn is None and request.nodes is not None:
        if world % request.nodes:
            raise DeploymentError(f"nodes={request.nodes} does not divide the world size tp·dp·pp = {world}; "
                                  f"valid nodes: {choices(divisors(world))}")
        gpn = world // request.nodes
    if gpn is None:
        gpn = _gpus_per_node(profile)
    if gpn is None:
        if world > 1:
            raise DeploymentError(
                f"device {getattr(profile, 'name', profile)} has no [interconnect] gpus_per_node; "
                f"pass gpus_per_node (or nodes) for a {world}-GPU deployment")
        gpn = 1
    gpn = int(gpn)
    nodes = request.nodes if request.nodes is not None else -(-world // gpn)
    if request.nodes is not None and nodes * gpn != world:
        raise DeploymentError(
            f"world size tp·dp·pp = {tp}·{dp}·{pp} = {world} but nodes × gpus_per_node = {nodes} × {gpn} = "
            f"{nodes * gpn}; make them equal (e.g. dp={nodes * gpn // (tp * pp)})"
            if (nodes * gpn) % (tp * pp) == 0 else
            f"world size tp·dp·pp = {world} but nodes × gpus_per_node = {nodes * gpn}; make them equal")
    stage_size = tp * dp
    tp_groups = [range(s * tp, (s + 1) * tp) for s in range(world // tp)]
    spans = ep > 1 or (dp > 1 and moe_tp * ep == stage_size)  # the experts' exchange spans the stage
    ep_groups = [range(s * stage_size, (s + 1) * stage_size) for s in range(pp)] if spans else [range(1)]
    pp_pairs: list[tuple[int, ...]] = [(r, r + stage_size) for r in range(world - stage_size)] or [(0,)]
    roles = tp_roles(spec.model_type) if tp > 1 else TPRoles(row_parallel=())
    return ResolvedDeployment(
        request=request, tp=tp, ep=ep, dp=dp, pp=pp, moe_tp=moe_tp, quant=quant, quant_source=source, moe_quant=moe_quant,
        not_converted=tuple(not_converted), kv_cache_dtype=kv_name, kv_cache_bytes=kv_bytes,
        gpus_per_node=gpn, nodes=nodes, tp_nodes=_span(tp_groups, gpn), ep_nodes=_span(ep_groups, gpn),
        pp_nodes=_span(pp_pairs, gpn), stages=pipeline_stages(spec.num_layers, pp),
        row_parallel=roles.row_parallel, replicated=roles.replicated,
        sharded_norms=sharded_norms(spec, roles) if tp > 1 else (), notes=tuple(notes),
        moe_exchange=resolve_moe_exchange(request.moe_exchange, getattr(profile, "engine_requested", "") or "vllm",
                                          _span(ep_groups, gpn) > 1)[0])
