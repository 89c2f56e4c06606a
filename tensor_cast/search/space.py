"""The search space: every serving configuration of a model worth simulating on given hardware.

Owns `Layout` (one engine instance's parallelism: tp, pp, attention dp, ep), `Variant` (a layout
with its weight quantization and KV-cache dtype: one trace), `Candidate` (a variant on a device at
a per-instance concurrency, replicated to the GPU count; or a disaggregated pair of prefill and
decode pools) and `layouts(spec, gpus, gpus_per_node)` (the structurally valid layouts).

What is enumerated, and why:
- TP within a node only (TP over the inter-node link is never the better choice: the all-reduce
  per layer would run at NIC speed), powers of two and the divisors the model's heads allow.
- PP (pipeline stages, `serving/pipeline.py`) in two cases: to span nodes once TP fills one
  (every stage exactly one node of TP: TP8 PP2 on 16 H100s, with or without EP8 for MoE; the
  stage-to-stage send/recv is then the only traffic on the inter-node link; attention DP + EP
  spans nodes without PP), and inside a node only for a GPU count at which no
  layout without PP fits in memory (`layouts(..., pp_in_node=True)`, asked for by the search
  after its memory fit: PP splits the layers, so the KV cache is not replicated the way TP
  beyond the KV-head count replicates it). PP degrees divide the GPU count and are at most the
  model's layers.
- Attention DP (dp > 1) only for MoE models, with EP over the tp·dp GPUs (the DeepSeek layout);
  for dense models more DP is just more replicas, which the GPU count already covers.
- EP = 1 or tp·dp; with `mixed_ep` (engines that split each expert over the ranks of an EP
  group: SGLang `--tp N --ep-size E`, TensorRT-LLM `--tp_size N --ep_size E`, moe_tp = N / E;
  vLLM's `--enable-expert-parallel` is all or nothing) also every EP between them under TP
  attention (dp = 1): a mixed MoE TP x EP split (deployment/config.py). The launch commands are
  the same flags (launch.py).
- A GPU count N is served by N / size identical instances of every layout whose size divides N.
Validity comes from `deployment.config.resolve` (the same checks `analyze` makes).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..deployment.config import Deployment, divisors, resolve
from ..errors import TensorCastError
from ..models.spec import ModelSpec

DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


@dataclass(frozen=True, order=True)
class Layout:
    """One engine instance: tp x attention-dp GPUs per pipeline stage, pp stages."""

    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1

    @property
    def gpus(self) -> int:
        return self.tp * self.pp * self.dp

    def describe(self) -> str:
        parts = [f"TP{self.tp}"]
        if self.dp > 1:
            parts.append(f"DP{self.dp}")
        if self.ep > 1:
            moe_tp = self.tp * self.dp // self.ep
            parts.append(f"EP{self.ep}" + (f"(MoE-TP{moe_tp})" if moe_tp > 1 else ""))
        if self.pp > 1:
            parts.append(f"PP{self.pp}")
        return "+".join(parts)

    def options(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True, order=True)
class Variant:
    """A layout with its quantization: one trace serves every device, shape and concurrency."""

    layout: Layout
    quant: str | None = None  # None: the checkpoint's own
    kv_cache_dtype: str | None = None  # None: the model dtype

    def options(self) -> dict[str, Any]:
        out: dict[str, Any] = self.layout.options()
        if self.quant is not None:
            out["quant"] = self.quant
        if self.kv_cache_dtype is not None:
            out["kv_cache_dtype"] = self.kv_cache_dtype
        return out

    def describe(self) -> str:
        return (f"{self.layout.describe()} {self.quant or 'ckpt'}"
                + (f" kv:{self.kv_cache_dtype}" if self.kv_cache_dtype else ""))


@dataclass(frozen=True, order=True)
class Pool:
    """Disaggregated serving: `workers` instances of `variant` doing one phase."""

    variant: Variant
    workers: int

    @property
    def gpus(self) -> int:
        return self.variant.layout.gpus * self.workers


@dataclass(frozen=True, order=True)
class Candidate:
    """One configuration to simulate. Aggregated: `replicas` instances of `variant`, each with
    `concurrency` clients. Disaggregated: `prefill` and `decode` pools (variant = the decode one)
    with `concurrency` clients in all, and replicas of that unit."""

    device: str
    gpus: int  # the whole deployment
    variant: Variant
    concurrency: int  # per instance (aggregated) / per prefill+decode unit (disaggregated)
    replicas: int = 1
    prefill: Pool | None = None
    decode: Pool | None = None
    engine: str = ""  # set when one search compares engines (run.py): the engine this configuration runs

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    @property
    def unit_gpus(self) -> int:
        """GPUs one simulated unit uses (an instance, or a prefill + decode pool pair)."""
        if self.prefill is not None and self.decode is not None:
            return self.prefill.gpus + self.decode.gpus
        return self.variant.layout.gpus

    def describe(self) -> str:
        return (f"{self.engine} " if self.engine else "") + self._layout()

    def _layout(self) -> str:
        if self.prefill is not None and self.decode is not None:
            return (f"{self.replicas}x[P {self.prefill.workers}x{self.prefill.variant.layout.describe()} + "
                    f"D {self.decode.workers}x{self.decode.variant.layout.describe()}] "
                    f"{self.variant.quant or 'ckpt'}" + (f" kv:{self.variant.kv_cache_dtype}"
                                                          if self.variant.kv_cache_dtype else ""))
        return f"{self.replicas}x{self.variant.describe()}"


def is_moe(spec: ModelSpec) -> bool:
    return any(layer.mlp.kind == "moe" and layer.mlp.moe for layer, _ in spec.layer_kinds())


def layouts(spec: ModelSpec, profile: Any, size: int, pp_in_node: bool = False, mixed_ep: bool = False) -> list[Layout]:
    """Every structurally valid layout of exactly `size` GPUs (see the module docstring);
    `pp_in_node`: only the layouts with pipeline stages smaller than a node; `mixed_ep`: also
    the MoE TP x EP splits under TP attention."""
    gpn = profile.interconnect.gpus_per_node if getattr(profile, "interconnect", None) else 1
    moe = is_moe(spec)
    out = []
    for pp in (d for d in divisors(size) if d <= spec.num_layers):
        stage = size // pp
        if pp_in_node != (pp > 1 and stage < gpn) or (pp > 1 and stage > gpn):
            continue  # PP spans nodes a whole node per stage; in-node PP only when asked (docstring)
        for tp in divisors(stage):
            dp = stage // tp
            if tp > gpn or (dp > 1 and not moe):
                continue
            if pp > 1 and not pp_in_node and tp < gpn:  # across nodes: TP fills each stage's node
                continue
            eps = [1, tp * dp] if moe and tp * dp > 1 else [1]
            if moe and mixed_ep and dp == 1:
                eps += [e for e in divisors(tp) if 1 < e < tp]
            for ep in eps:
                if dp > 1 and ep == 1:  # attention DP goes with EP (else it is replication)
                    continue
                layout = Layout(tp=tp, pp=pp, dp=dp, ep=ep)
                try:
                    resolve(Deployment(tp=tp, pp=pp, dp=dp, ep=ep), spec, profile)
                except TensorCastError:
                    continue
                out.append(layout)
    return sorted(set(out))


def instance_sizes(total: int) -> list[int]:
    """Instance sizes that serve `total` GPUs as identical replicas."""
    return divisors(total)
