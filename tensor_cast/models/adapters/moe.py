"""MoE model families: how each `model_type`'s config and modules describe its MoE layers.

Owns `MoEFamily` (one table row per family: the config fields for E, k, expert and shared
widths, the router's scoring, which layers are MoE, and the module names of the MoE block, its
router, experts and shared experts) and `MoEAdapter`, the `DecoderAdapter` that reads a row:
- `to_spec`: MoE layers get `MLPSpec(kind="moe", moe=MoESpec(...))`, the others stay dense;
- `config_for_layer`: maps a layer spec back to the HF fields (so a `per_layer_config` override
  of `num_experts_per_tok` / `moe_intermediate_size` / `num_experts` changes exactly that layer)
  and sets the family's layer-selection fields so the layer builds as MoE or dense whatever its
  index in the representative stack (`LayerRule.force`);
- `routed_expert_parameters(rep)`: the parameters of the routed experts (3-D `gate_up_proj` /
  `down_proj` and their per-expert biases), which a token uses k/E of;
- `check_modules(...)`: the built model's MoE layers have the row's modules, with fused 3-D
  experts dispatching through transformers' experts registry (the format detection).

Every family here has fused 3-D experts decorated with transformers' `@use_experts_implementation`
(what `capture/experts_interface.py` and `passes/replace_moe.py` rely on), or swapped to behave so
(Llama 4, whose transformers code computes every expert for every token: `models/llama4_moe.py`).
Families whose experts are neither (dbrx, jetmoe, longcat_flash's own loop) have no row:
`adapter_for` names them as unsupported.

Must not touch torch graphs: this is config <-> spec translation plus module names.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import PretrainedConfig

from ...errors import MalformedConfigError, UnsupportedModelError
from ..spec import AttentionSpec, LayerSpec, MLPSpec, ModelSpec, MoESpec
from .base import CORE_FIELDS, DecoderAdapter, require


# ---- which layers are MoE ---------------------------------------------------------------------
@dataclass(frozen=True)
class LayerRule:
    """`is_moe(config, index)`: the family's rule; `force(config, moe)`: make every index that kind."""

    is_moe: Callable[[PretrainedConfig, int], bool]
    force: Callable[[PretrainedConfig, bool], None]


def _all_moe_force(config: PretrainedConfig, moe: bool) -> None:
    if not moe:
        raise UnsupportedModelError(f"model_type {config.model_type!r} has no dense MLP layers to build")


ALL_MOE = LayerRule(is_moe=lambda config, index: True, force=_all_moe_force)


def _sparse_step_is_moe(config: PretrainedConfig, index: int) -> bool:
    """Qwen2/3-MoE: MoE unless listed in mlp_only_layers, every decoder_sparse_step-th layer."""
    step = int(getattr(config, "decoder_sparse_step", 1) or 1)
    return index not in (getattr(config, "mlp_only_layers", None) or []) and (index + 1) % step == 0


def _sparse_step_force(config: PretrainedConfig, moe: bool) -> None:
    config.decoder_sparse_step = 1
    config.mlp_only_layers = [] if moe else list(range(int(config.num_hidden_layers)))


SPARSE_STEP = LayerRule(is_moe=_sparse_step_is_moe, force=_sparse_step_force)


def _first_k_dense_force(config: PretrainedConfig, moe: bool) -> None:
    config.first_k_dense_replace = 0 if moe else int(config.num_hidden_layers)


FIRST_K_DENSE = LayerRule(
    is_moe=lambda config, index: index >= int(getattr(config, "first_k_dense_replace", 0) or 0),
    force=_first_k_dense_force)


def _num_dense_force(config: PretrainedConfig, moe: bool) -> None:
    config.num_dense_layers = 0 if moe else int(config.num_hidden_layers)


NUM_DENSE_LAYERS = LayerRule(  # AFMoE (Arcee Trinity): the first num_dense_layers layers are dense
    is_moe=lambda config, index: index >= int(getattr(config, "num_dense_layers", 0) or 0), force=_num_dense_force)


def _moe_range_is_moe(config: PretrainedConfig, index: int) -> bool:
    """ERNIE-4.5: every moe_layer_interval-th layer from moe_layer_start_index to moe_layer_end_index."""
    interval = int(config.moe_layer_interval or 1)
    end = config.moe_layer_end_index
    end = int(config.num_hidden_layers) - 1 if end in (None, -1) else int(end)
    return (index + 1) % interval == 0 and int(config.moe_layer_start_index) <= index <= end


def _moe_range_force(config: PretrainedConfig, moe: bool) -> None:
    config.moe_layer_interval = 1
    config.moe_layer_start_index = 0 if moe else int(config.num_hidden_layers)
    config.moe_layer_end_index = int(config.num_hidden_layers) - 1


MOE_RANGE = LayerRule(is_moe=_moe_range_is_moe, force=_moe_range_force)


def _mlp_layer_types_force(config: PretrainedConfig, moe: bool) -> None:
    config.mlp_layer_types = ["sparse" if moe else "dense"] * int(config.num_hidden_layers)


def _moe_list_force(config: PretrainedConfig, moe: bool) -> None:
    config.moe_layers = list(range(int(config.num_hidden_layers))) if moe else []


MOE_LAYER_LIST = LayerRule(  # Llama 4: the list of MoE layer indices (from interleave_moe_layer_step)
    is_moe=lambda config, index: index in (config.moe_layers or []), force=_moe_list_force)


MLP_LAYER_TYPES = LayerRule(  # MiMo-V2-Flash: a per-layer list of "dense" / "sparse"
    is_moe=lambda config, index: config.mlp_layer_types[index] == "sparse", force=_mlp_layer_types_force)


# ---- the family table row ---------------------------------------------------------------------
@dataclass(frozen=True)
class MoEFamily:
    """How one family names its MoE sizes (HF config attributes) and modules."""

    num_experts: str  # config attribute holding E
    expert_size: str = "moe_intermediate_size"  # per-expert intermediate width I
    top_k: str = "num_experts_per_tok"
    dense_size: str | None = "intermediate_size"  # width of the family's dense MLP layers (None: none)
    shared_count: str | None = None  # number of shared experts; their width is count x expert_size
    shared_size: str | None = None  # or: the total shared-expert width, one shared expert
    shared_experts: int = 0  # or: a fixed count of shared experts of the expert width, not in the config (Llama 4)
    router: str = "softmax"  # softmax | sigmoid (the scoring before top-k)
    groups: tuple[str, str] | None = None  # (n_group, topk_group): grouped top-k
    latent_size: str | None = None  # LatentMoE: the experts' width behind a down / up projection (0 / None: none)
    layers: LayerRule = ALL_MOE
    expert_bias: bool = False  # experts carry gate_up/down biases (gpt-oss)
    # module names: <layer>.<block> holds <router>, <experts> and <shared> (None: no shared experts)
    block: str = "mlp"
    router_module: str = "gate"
    experts_module: str = "experts"
    shared_module: str | None = None

    def moe_spec(self, config: PretrainedConfig) -> MoESpec:
        expert_size = int(require(config, self.expert_size))
        shared_count = int(getattr(config, self.shared_count, 0) or 0) if self.shared_count else 0
        shared_size = shared_count * expert_size
        if self.shared_size:
            shared_size = int(getattr(config, self.shared_size, 0) or 0)
            shared_count = 1 if shared_size else 0
        if self.shared_experts:
            shared_count, shared_size = self.shared_experts, self.shared_experts * expert_size
        groups = (int(getattr(config, self.groups[0], 1) or 1), int(getattr(config, self.groups[1], 1) or 1)) \
            if self.groups else (1, 1)
        return MoESpec(num_experts=int(require(config, self.num_experts)), top_k=int(require(config, self.top_k)),
                       expert_intermediate_size=expert_size, num_shared_experts=shared_count,
                       shared_intermediate_size=shared_size, router=self.router, num_groups=groups[0],
                       top_k_groups=groups[1],
                       latent_size=int(getattr(config, self.latent_size, 0) or 0) if self.latent_size else 0)

    @property
    def experts_path(self) -> str:
        """The routed experts' module inside a decoder layer (a token uses top_k / num_experts of its weights)."""
        return f"{self.block}.{self.experts_module}"

    def set_moe_fields(self, config: PretrainedConfig, moe: MoESpec) -> None:
        """Write a layer's MoESpec back into the config attributes this family reads."""
        setattr(config, self.num_experts, moe.num_experts)
        setattr(config, self.top_k, moe.top_k)
        setattr(config, self.expert_size, moe.expert_intermediate_size)
        if self.shared_size:
            setattr(config, self.shared_size, moe.shared_intermediate_size)
        elif self.shared_count:
            # The family sizes its shared MLP as count x expert_size: pick the count that keeps the
            # spec's shared width when the expert width changed (a per-layer override, TP sharding).
            # A width that is no such multiple (TP-sharded shared experts beside whole EP experts)
            # keeps the count; the build rebuilds the module at the spec's width
            # (models/build.py `fit_shared_experts`).
            count = moe.num_shared_experts
            if (count and moe.shared_intermediate_size != count * moe.expert_intermediate_size
                    and moe.shared_intermediate_size % moe.expert_intermediate_size == 0):
                count = moe.shared_intermediate_size // moe.expert_intermediate_size
            setattr(config, self.shared_count, count)
        if self.groups:
            setattr(config, self.groups[0], moe.num_groups)
            setattr(config, self.groups[1], moe.top_k_groups)
        if self.latent_size:
            setattr(config, self.latent_size, moe.latent_size or None)


@dataclass(frozen=True)
class MoEAdapter(DecoderAdapter):
    """A decoder whose MLP is a MoE block in the layers its `MoEFamily` rule selects."""

    moe: MoEFamily = field(default_factory=lambda: MoEFamily(num_experts="num_experts"))
    qk_norm_field: str | None = None  # config flag enabling per-head q/k norms (GLM-4.5 use_qk_norm)
    sinks: bool = False  # learned attention sinks (gpt-oss)

    def required_fields(self) -> tuple[str, ...]:
        moe = self.moe
        return (*CORE_FIELDS, moe.num_experts, moe.top_k, moe.expert_size, *self.extra_required,
                *((moe.dense_size,) if moe.dense_size and moe.dense_size != moe.expert_size else ()))

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        spec = super().attention_spec(config, index)
        qk_norm = bool(getattr(config, self.qk_norm_field, False)) if self.qk_norm_field else self.qk_norm
        return dataclasses.replace(spec, qk_norm=qk_norm, sinks=self.sinks)

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        activation = str(getattr(config, self.activation_field, "silu"))
        if self.moe.layers.is_moe(config, index):
            return MLPSpec(kind="moe", activation=activation, bias=self.moe.expert_bias,
                           moe=self.moe.moe_spec(config))
        if self.moe.dense_size is None:
            raise UnsupportedModelError(f"model_type {config.model_type!r}: layer {index} is not a MoE layer "
                                        "but the family has no dense MLP")
        return MLPSpec(kind="dense", intermediate_size=int(require(config, self.moe.dense_size)),
                       activation=activation, bias=self._flag(config, self.mlp_bias_field))

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        if layer.mlp.kind == "dense" and self.moe.dense_size is None:
            raise UnsupportedModelError(f"model_type {spec.model_type!r} has no dense MLP layers to build")
        config = super().config_for_layer(spec, layer, base)
        dense_size = self.moe.dense_size
        if layer.mlp.kind == "dense" and dense_size is not None and dense_size != "intermediate_size":
            setattr(config, dense_size, layer.mlp.intermediate_size)
        if layer.mlp.kind == "moe" and layer.mlp.moe is not None:
            self.moe.set_moe_fields(config, layer.mlp.moe)
        if layer.mlp.kind in ("moe", "dense"):
            self.moe.layers.force(config, layer.mlp.kind == "moe")
        return config

    @property
    def routed_experts_path(self) -> str:
        return self.moe.experts_path

    def check_modules(self, model: Any, layers_path: str, kinds: Sequence[LayerSpec]) -> None:
        """Every MoE layer has the table's block, router, experts (fused 3-D, dispatching through
        transformers' experts registry) and shared experts; else a clear error naming the module."""
        for index, kind in enumerate(kinds):
            if kind.mlp.kind != "moe" or kind.mlp.moe is None:
                continue
            path = f"{layers_path}.{index}.{self.moe.block}"
            names = [self.moe.router_module, self.moe.experts_module]
            if kind.mlp.moe.num_shared_experts and self.moe.shared_module:
                names.append(self.moe.shared_module)
            missing = [name for name in names if _submodule(model, f"{path}.{name}") is None]
            if missing:
                raise UnsupportedModelError(
                    f"model_type {model.config.model_type!r}: MoE block {path} lacks {', '.join(missing)}")
            experts = _submodule(model, f"{path}.{self.moe.experts_module}")
            weight = getattr(experts, "gate_up_proj", None)
            if weight is None:
                weight = getattr(experts, "up_proj", None)
            if not hasattr(experts, "has_gate") or getattr(weight, "dim", lambda: 0)() != 3:
                raise UnsupportedModelError(
                    f"model_type {model.config.model_type!r}: {type(experts).__name__} does not store fused 3-D "
                    "experts dispatched through transformers' experts registry (@use_experts_implementation)")


def _submodule(model: Any, path: str) -> Any:
    try:
        return model.get_submodule(path)
    except AttributeError:
        return None


def routed_expert_parameters(model: Any, spec: ModelSpec, layers: Sequence[Any]) -> set[str]:
    """Names of the routed experts' parameters (per-expert tensors: a token uses k/E of them).

    Any adapter naming its experts module inside a decoder layer (`routed_experts_path`: the MoE
    table rows, the MLA and hybrid adapters) counts; `layers` are the decoder layer modules (the
    stack's and the MTP blocks'). Parameters are matched by identity, not by name.
    """
    from . import adapter_for

    path = getattr(adapter_for(spec.model_type), "routed_experts_path", None)
    if path is None:
        return set()
    experts = [_submodule(layer, path) for layer in layers]
    owned = {id(p) for module in experts if module is not None for p in module.parameters()}
    return {name for name, p in model.named_parameters() if id(p) in owned}


@dataclass(frozen=True)
class MiMoV2FlashAdapter(MoEAdapter):
    """MiMo-V2-Flash: its sliding-window layers have twice the config's KV heads and learned sinks.

    The spec holds each layer's real KV head count; the config holds the full-attention count
    (`MiMoV2FlashAttention` doubles it for sliding layers). V heads are narrower than Q/K heads
    (`v_head_dim`), which the attention op reads from the traced shapes.
    """

    SLIDING_KV_FACTOR = 2

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        spec = super().attention_spec(config, index)
        if spec.kind != "sliding":
            return spec
        return dataclasses.replace(spec, num_kv_heads=spec.num_kv_heads * self.SLIDING_KV_FACTOR, sinks=True)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = super().config_for_layer(spec, layer, base)
        if layer.attention.kind == "sliding":
            kv = layer.attention.num_kv_heads
            if kv % self.SLIDING_KV_FACTOR:  # a TP rank's one head (8 KV heads over 8 ranks): no whole half
                object.__setattr__(config, "num_key_value_heads", DoubledKVHeads(kv, self.SLIDING_KV_FACTOR))
            else:
                config.num_key_value_heads = kv // self.SLIDING_KV_FACTOR
        return config


@dataclass(frozen=True)
class DoubledKVHeads:
    """The `num_key_value_heads` of a layer whose attention builds `num_key_value_heads * factor` heads
    (MiMo-V2-Flash's sliding layers, factor 2) when the layer's own count is not a whole multiple of the
    factor — a TP rank's one KV head of MiMo-V2-Flash's eight at tp=8: its product with the factor is
    exactly `heads`, and multiplying it by anything else is a TypeError, never a silent size."""

    heads: int
    factor: int

    def __mul__(self, other: object) -> int:
        if other != self.factor:
            raise TypeError(f"num_key_value_heads of this layer is {self.heads} / {self.factor}: only its product "
                            f"with {self.factor} is a head count, not with {other!r}")
        return self.heads

    __rmul__ = __mul__


@dataclass(frozen=True)
class Llama4Adapter(MoEAdapter):
    """Llama 4: RoPE layers attend within their chunk (`attention_chunk_size`), every
    `no_rope_layer_interval`-th layer is NoPE with full attention; the layer's kind says which, so a
    representative stack sets `no_rope_layers` from it. Refused: a config whose RoPE and chunked layers
    differ (without a chunk size a RoPE and a NoPE full-attention layer are one spec kind, but not one
    computation), and an activation other than SiLU (the swapped experts run SiLU, `llama4_moe.py`)."""

    def attention_spec(self, config: PretrainedConfig, index: int) -> AttentionSpec:
        spec = super().attention_spec(config, index)
        rope = bool((getattr(config, "no_rope_layers", None) or [1] * (index + 1))[index])
        if rope != (spec.kind == "chunked"):
            raise UnsupportedModelError(
                f"model_type {config.model_type!r}: layer {index} is {'RoPE' if rope else 'NoPE'} with {spec.kind} "
                "attention; supported: RoPE layers with chunked attention (attention_chunk_size set) and NoPE "
                "layers with full attention")
        return spec

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        if str(getattr(config, "hidden_act", "silu")) != "silu":
            raise UnsupportedModelError(f"model_type {config.model_type!r}: hidden_act {config.hidden_act!r} is not "
                                        "supported; accepted: silu")
        return super().mlp_spec(config, index)

    def config_for_layer(self, spec: ModelSpec, layer: LayerSpec, base: PretrainedConfig) -> PretrainedConfig:
        config = super().config_for_layer(spec, layer, base)
        config.no_rope_layers = [int(layer.attention.kind == "chunked")] * int(config.num_hidden_layers)
        return config


@dataclass(frozen=True)
class HunyuanMoEAdapter(MoEAdapter):
    """Hunyuan MoE (Hunyuan-A13B, `hunyuan_v1_moe`): `num_experts` and `moe_topk` are an int or one
    entry per layer (transformers' `HunYuanMoEV1Gate` indexes them by layer); every layer's MoE block
    holds routed experts and one shared MLP (`shared_mlp`), both of `intermediate_size` — the width
    transformers' `HunYuanMoEV1Experts` and `HunYuanMoEV1MLP` build (a checkpoint's per-layer
    `moe_intermediate_size` / `num_shared_expert` lists are read only to refuse what the modules cannot
    build); per-head q/k RMSNorm after RoPE (`use_qk_norm`); the router (`gate.wg`) in float32."""

    def check_given(self, data: Mapping[str, Any], source: str) -> None:
        super().check_given(data, source)
        width = data.get("intermediate_size")
        for name, accepted in (("moe_intermediate_size", width), ("num_shared_expert", 1)):
            value = data.get(name)
            values = value if isinstance(value, list) else [value]
            bad = sorted({v for v in values if v is not None and v != accepted})
            if bad:
                raise UnsupportedModelError(
                    f"{source}: {name}={bad[0]!r}: transformers' HunYuanMoEV1 modules build every MoE layer with one "
                    f"shared MLP and experts of intermediate_size={width}; accepted {name}: {accepted}")

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        return super().mlp_spec(_layer_view(config, index), index)


def _layer_view(config: PretrainedConfig, index: int) -> PretrainedConfig:
    """A copy of `config` with its per-layer list fields (Hunyuan's num_experts / moe_topk) at layer `index`."""
    view = copy.copy(config)
    for name in ("num_experts", "moe_topk"):
        value = getattr(config, name, None)
        if isinstance(value, (list, tuple)):
            if index >= len(value):
                raise MalformedConfigError(f"{name} has {len(value)} entries; layer {index} has none")
            setattr(view, name, value[index])
    return view


@dataclass(frozen=True)
class Cohere2MoEAdapter(MoEAdapter):
    """Cohere2 MoE (`cohere2_moe`): Command-A's parallel attention + MLP block over routed experts of
    `intermediate_size` with `num_shared_experts` shared ones, dense layers of
    `prefix_dense_intermediate_size` where `mlp_layer_types` says; the router scores by
    `expert_selection_fn` (softmax or sigmoid). The dense width is required only where a layer is dense."""

    def required_fields(self) -> tuple[str, ...]:
        return tuple(f for f in super().required_fields() if f != self.moe.dense_size)

    def mlp_spec(self, config: PretrainedConfig, index: int) -> MLPSpec:
        spec = super().mlp_spec(config, index)
        if spec.moe is None:
            return spec
        router = "sigmoid" if getattr(config, "expert_selection_fn", "softmax") == "sigmoid" else "softmax"
        return dataclasses.replace(spec, moe=dataclasses.replace(spec.moe, router=router))


# ---- the family rows (registered in adapters/__init__.py) -----------------------------------------
# Granite's MoE block (`block_sparse_moe`) and the shared MLP of `shared_intermediate_size` beside it (`shared_mlp`,
# outside the block: one shared expert in the spec; none when the width is 0)
GRANITE_SHARED_MOE = MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size",
                               shared_size="shared_intermediate_size", dense_size=None, block="block_sparse_moe",
                               router_module="router")


def moe_adapters() -> list[MoEAdapter]:
    return [
        MoEAdapter(model_types=("qwen3_moe",), qk_norm=True, out_bias_field="attention_bias", mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", layers=SPARSE_STEP)),
        MoEAdapter(model_types=("qwen2_moe",), qkv_bias_field="qkv_bias", out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", shared_size="shared_expert_intermediate_size",
                                 layers=SPARSE_STEP, shared_module="shared_expert")),
        MoEAdapter(model_types=("mixtral",), window_applies_to_all_layers=True, qkv_bias_field=None,
                   out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size", dense_size=None)),
        MoEAdapter(model_types=("gpt_oss",), sinks=True, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size", dense_size=None,
                                 expert_bias=True, router_module="router")),
        MoEAdapter(model_types=("glm4_moe",), qk_norm_field="use_qk_norm", out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="n_routed_experts", shared_count="n_shared_experts", router="sigmoid",
                                 groups=("n_group", "topk_group"), layers=FIRST_K_DENSE,
                                 shared_module="shared_experts")),
        MoEAdapter(model_types=("minimax_m2",), qk_norm_field="use_qk_norm", qkv_bias_field=None,
                   out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size", dense_size=None,
                                 router="sigmoid")),
        MoEAdapter(model_types=("ernie4_5_moe",), qkv_bias_field="use_bias", out_bias_field="use_bias",
                   mlp_bias_field="use_bias",
                   fp32_parameters=("mlp.gate.weight", "e_score_correction_bias"),
                   moe=MoEFamily(num_experts="moe_num_experts", top_k="moe_k",
                                 shared_count="moe_num_shared_experts", layers=MOE_RANGE,
                                 shared_module="shared_experts")),
        MoEAdapter(model_types=("olmoe", "flex_olmo"), qk_norm=True, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", expert_size="intermediate_size", dense_size=None)),
        # Sarvam-M MoE and dots.llm1: DeepSeek-V3's MoE (sigmoid grouped routing, shared experts, dense first
        # layers) under standard attention
        MoEAdapter(model_types=("sarvam_moe",), qk_norm_field="use_qk_norm", out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="n_routed_experts", shared_count="n_shared_experts", router="sigmoid",
                                 groups=("n_group", "topk_group"), layers=FIRST_K_DENSE,
                                 shared_module="shared_experts")),
        # Solar Open (Upstage): GLM-4.5's MoE in every layer (no dense MLP layers), no q/k norm
        MoEAdapter(model_types=("solar_open",), out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="n_routed_experts", shared_count="n_shared_experts", router="sigmoid",
                                 groups=("n_group", "topk_group"), dense_size=None, shared_module="shared_experts")),
        # K-EXAONE (LG, exaone_moe): EXAONE 4's attention (q/k norm, 3:1 sliding / global, global layers NoPE) over
        # DeepSeek-V3's MoE (sigmoid grouped routing, one shared expert), dense layers where mlp_layer_types says
        MoEAdapter(model_types=("exaone_moe",), qk_norm=True, out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", shared_count="num_shared_experts", router="sigmoid",
                                 groups=("n_group", "topk_group"), layers=MLP_LAYER_TYPES,
                                 shared_module="shared_experts"),
                   mtp_not_modelled="K-EXAONE's MTP block (its layer's attention kind and layout) is not modelled "
                                    "yet"),
        # Arcee Trinity (afmoe): gated GQA with q/k norms, 3:1 sliding / global layers, sigmoid top-k routing with
        # an expert bias, shared experts, the first num_dense_layers layers dense
        MoEAdapter(model_types=("afmoe",), qk_norm=True, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", shared_count="num_shared_experts", router="sigmoid",
                                 layers=NUM_DENSE_LAYERS, router_module="router", shared_module="shared_experts")),
        # HY v3 (Tencent, hy_v3): GQA with q/k norms over a MoE with sigmoid routing, a correction bias on the block
        # and shared experts, dense layers where mlp_layer_types says
        MoEAdapter(model_types=("hy_v3",), qk_norm=True, mlp_bias_field="mlp_bias",
                   moe=MoEFamily(num_experts="num_experts", shared_count="num_shared_experts", router="sigmoid",
                                 layers=MLP_LAYER_TYPES, shared_module="shared_experts")),
        # Mellum (JetBrains, mellum): sliding / full GQA layers over Qwen3-MoE-style experts (softmax top-k, no
        # shared expert), dense layers where mlp_layer_types says
        MoEAdapter(model_types=("mellum",), mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", layers=MLP_LAYER_TYPES),
                   mtp_not_modelled="Mellum's MTP layers (num_mtp_layers, of their own mtp_layer_types) are not "
                                    "modelled yet"),
        # Kolibri 1 (kolibri1): q/k-normed GQA, sliding layers with RoPE and NoPE global ones, a MoE in every layer
        # (sigmoid routing with a correction bias, one shared expert of shared_expert_intermediate_size)
        MoEAdapter(model_types=("kolibri1",), qk_norm=True, qkv_bias_field=None, out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", dense_size=None, router="sigmoid",
                                 shared_size="shared_expert_intermediate_size", shared_module="shared_experts")),
        # Beam (Reflection AI, beam; Beam-1.0-501B-A23B is transformers' default config): q/k-normed GQA with a
        # sigmoid output gate per head, sliding (RoPE) / global (NoPE, position-scaled queries) layers, sandwich
        # norms with depth-scaled residuals, DeepSeek-V3's grouped sigmoid routing without shared experts, dense
        # layers where mlp_layer_types says; its SwiGLU runs in float32 (capture/experts_interface.py)
        MoEAdapter(model_types=("beam",), qk_norm=True, out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_experts", router="sigmoid", groups=("n_group", "topk_group"),
                                 layers=MLP_LAYER_TYPES)),
        # Flint (RecursiveSI, flint): q/k-normed GQA with sinks, sliding (RoPE) / full (NoPE) layers; Qwen2-MoE's
        # layout (dense mlp_only_layers, decoder_sparse_step) with sigmoid top-k routing and an always-added shared
        # expert of shared_expert_intermediate_size; router weight and sinks kept in float32 (its
        # _keep_in_fp32_modules_strict)
        MoEAdapter(model_types=("flint",), qk_norm=True, sinks=True, out_bias_field="attention_bias",
                   mlp_bias_field=None, fp32_parameters=("mlp.gate.weight", "self_attn.sinks", "e_score_correction_bias"),
                   moe=MoEFamily(num_experts="num_experts", shared_size="shared_expert_intermediate_size",
                                 router="sigmoid", layers=SPARSE_STEP, shared_module="shared_expert")),
        Cohere2MoEAdapter(model_types=("cohere2_moe",), qkv_bias_field="attention_bias", out_bias_field="attention_bias",
                          mlp_bias_field=None, supports_layer_skips=False,
                          moe=MoEFamily(num_experts="num_experts", expert_size="intermediate_size",
                                        dense_size="prefix_dense_intermediate_size", shared_count="num_shared_experts",
                                        layers=MLP_LAYER_TYPES, shared_module="shared_experts")),
        MoEAdapter(model_types=("dots1",), qk_norm=True, out_bias_field=None, mlp_bias_field=None,
                   moe=MoEFamily(num_experts="n_routed_experts", shared_count="n_shared_experts", router="sigmoid",
                                 groups=("n_group", "topk_group"), layers=FIRST_K_DENSE,
                                 shared_module="shared_experts")),
        MiMoV2FlashAdapter(model_types=("mimo_v2_flash",), qkv_bias_field="attention_bias", out_bias_field=None,
                           mlp_bias_field=None,
                           moe=MoEFamily(num_experts="n_routed_experts", router="sigmoid",
                                         groups=("n_group", "topk_group"), layers=MLP_LAYER_TYPES)),
        # Phi-3.5-MoE (its sliding_window, when set, on every layer) and Granite 3.x MoE: Mixtral-style top-k
        # experts in every layer under `router`, no shared expert
        MoEAdapter(model_types=("phimoe",), window_applies_to_all_layers=True, qkv_bias_field="attention_bias",
                   out_bias_field="attention_bias", mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size", dense_size=None,
                                 router_module="router")),
        # Hunyuan MoE (Hunyuan-A13B): per-layer top-k / expert counts, one shared MLP, q/k norm after RoPE
        HunyuanMoEAdapter(model_types=("hunyuan_v1_moe",), qk_norm_field="use_qk_norm", out_bias_field="attention_bias",
                          qkv_bias_field="attention_bias", mlp_bias_field=None, extra_required=("head_dim",),
                          fp32_parameters=("gate.wg.weight", "e_score_correction_bias"),
                          moe=MoEFamily(num_experts="num_experts", top_k="moe_topk", expert_size="intermediate_size",
                                        dense_size=None, shared_experts=1, shared_module="shared_mlp")),
        MoEAdapter(model_types=("granitemoe",), qkv_bias_field="attention_bias", out_bias_field="attention_bias",
                   mlp_bias_field=None,
                   moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size", dense_size=None,
                                 block="block_sparse_moe", router_module="router")),
        # Granite MoE with a shared MLP beside the block (granitemoeshared; granitemoe_swa: sliding / full
        # layer_types and learned attention sinks): Granite 4.0's MoE layout (granite_hybrid.py) without Mamba
        MoEAdapter(model_types=("granitemoeshared",), qkv_bias_field="attention_bias", out_bias_field="attention_bias",
                   mlp_bias_field=None, moe=GRANITE_SHARED_MOE),
        MoEAdapter(model_types=("granitemoe_swa",), sinks=True, qkv_bias_field="attention_bias",
                   out_bias_field="attention_bias", mlp_bias_field=None, moe=GRANITE_SHARED_MOE),
        # Llama 4 Scout / Maverick: top-1 sigmoid routing plus one shared expert, MoE in `moe_layers`
        # (Maverick: every other layer), dense layers of intermediate_size_mlp; experts swapped (llama4_moe.py)
        Llama4Adapter(model_types=("llama4_text",), qkv_bias_field="attention_bias", out_bias_field="attention_bias",
                      mlp_bias_field=None,
                      moe=MoEFamily(num_experts="num_local_experts", expert_size="intermediate_size",
                                    dense_size="intermediate_size_mlp", router="sigmoid", layers=MOE_LAYER_LIST,
                                    block="feed_forward", router_module="router", shared_module="shared_expert",
                                    shared_experts=1)),
    ]
