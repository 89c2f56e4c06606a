"""The engine-owned model spec: what a model *is*, independent of HF field names.

Owns the frozen dataclasses `ModelSpec` / `LayerSpec` / `AttentionSpec` / `MLPSpec` (+ `MoESpec`,
`MLASpec`, `LinearAttentionSpec`, `MambaSpec`, `CompressedAttentionSpec`). Adapters (`models/adapters/`) translate a HF config into a spec
and back; everything downstream (build, passes, memory, reports) reads the spec, never raw config
fields. Per-layer heterogeneity is first-class: a spec holds one `LayerSpec` per layer, and layers
with equal specs are one *layer kind* (traced once, costed once, multiplied by their count).

Must not import torch or transformers: a spec is plain data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

SCHEMA_VERSION = 3  # 2: written_model_type; 3: mtp_block (an MTP block's layers) for mtp_layer
# the attribute the build records each layer's AttentionSpec under on its modules (build.py), read by
# the capture's attention interface and the swapped mixers that need their layer's spec
ATTENTION_SPEC_ATTRIBUTE = "tensor_cast_attention_spec"

ATTENTION_KINDS = ("full", "sliding", "chunked", "linear", "mamba", "mla", "compressed", "none")
# softmax attention over per-head K/V (GQA): the kinds that differ only in which keys a query sees
GQA_KINDS = ("full", "sliding", "chunked")
MLP_KINDS = ("dense", "moe", "none")


@dataclass(frozen=True)
class MLASpec:
    """DeepSeek multi-head latent attention sizes (per head unless noted)."""

    q_lora_rank: int | None  # None: q is projected directly from hidden
    kv_lora_rank: int  # latent cached per token
    qk_nope_head_dim: int
    qk_rope_head_dim: int  # rope key cached per token (shared by all heads)
    v_head_dim: int
    # DeepSeek sparse attention (V3.2, GLM-5): an indexer picks index_topk cached tokens per query.
    index_topk: int = 0  # 0: dense MLA
    index_n_heads: int = 0
    index_head_dim: int = 0


@dataclass(frozen=True)
class LinearAttentionSpec:
    """Linear-attention (gated DeltaNet style) sizes: a recurrent state instead of a KV cache."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel_size: int = 4


@dataclass(frozen=True)
class MambaSpec:
    """Mamba mixer sizes (kind "mamba"). Mamba-2 (SSD, `version` 2): `num_heads` x `head_dim` channels,
    each head's state of `head_dim` x `state_size` values; B and C shared by the heads of each of
    `n_groups` groups; a causal depthwise conv of `conv_kernel_size` over x, B and C; the chunked scan
    in chunks of `chunk_size` tokens. Mamba-1 (`version` 1, Jamba): `num_heads` channels of width
    `head_dim` 1 (the inner width), each with a state of `state_size`; one B / C for all channels
    (`n_groups` 1) projected from the conv output through a `dt_rank`-wide time step; the conv over x
    only. The recurrent state is stored in `state_dtype` (the conv state in the model's)."""

    num_heads: int
    head_dim: int
    state_size: int
    n_groups: int
    conv_kernel_size: int = 4
    chunk_size: int = 128
    state_dtype: str = "bfloat16"
    version: int = 2
    dt_rank: int = 0  # Mamba-1: the time step's low-rank width


@dataclass(frozen=True)
class CompressedAttentionSpec:
    """DeepSeek-V4 attention (kind "compressed"): one shared K = V head of the layer's `head_dim`, a
    sliding window of the last `window` tokens and, when `compress_ratio` > 0, one compressed entry per
    `compress_ratio` tokens — every entry attended (HCA), or the `index_topk` a lightning indexer of
    `index_n_heads` x `index_head_dim` picks per query (CSA). Queries through a `q_lora_rank`
    bottleneck; the output through `o_groups` grouped projections of `o_lora_rank` each."""

    q_lora_rank: int
    rope_dim: int
    window: int
    compress_ratio: int = 0  # 0: the sliding window only
    index_topk: int = 0  # > 0: CSA
    index_n_heads: int = 0
    index_head_dim: int = 0
    o_groups: int = 1
    o_lora_rank: int = 0


@dataclass(frozen=True)
class AttentionSpec:
    kind: str  # one of ATTENTION_KINDS
    num_heads: int = 0
    num_kv_heads: int = 0
    head_dim: int = 0
    window: int | None = None  # sliding-window length in tokens (kind == "sliding")
    # chunked local attention (kind == "chunked", Llama 4): a query attends only to the keys of its own
    # aligned chunk of `chunk` tokens, [c * floor(p / c), p]
    chunk: int | None = None
    qk_norm: bool = False
    qkv_bias: bool = False
    out_bias: bool = False
    sinks: bool = False  # learned attention sinks (gpt-oss)
    mla: MLASpec | None = None
    linear: LinearAttentionSpec | None = None
    mamba: MambaSpec | None = None
    compressed: CompressedAttentionSpec | None = None

    def __post_init__(self) -> None:
        if self.kind not in ATTENTION_KINDS:
            raise ValueError(f"attention kind {self.kind!r} not in {ATTENTION_KINDS}")
        if self.kind == "sliding" and not self.window:
            raise ValueError("sliding attention needs a window")
        if self.kind == "chunked" and not self.chunk:
            raise ValueError("chunked attention needs a chunk size")
        if self.kind == "compressed" and self.compressed is None:
            raise ValueError("compressed attention needs a CompressedAttentionSpec")
        if self.kind == "mamba" and self.mamba is None:
            raise ValueError("a Mamba mixer needs a MambaSpec")

    def describe(self) -> str:
        if self.kind == "sliding":
            return f"sliding({self.window})"
        if self.kind == "chunked":
            return f"chunked({self.chunk})"
        if self.kind == "compressed" and self.compressed is not None:
            c = self.compressed
            if not c.compress_ratio:
                return f"swa({c.window})"
            if c.index_topk:
                return f"csa({c.compress_ratio}, top-{c.index_topk})"
            return f"hca({c.compress_ratio})"
        if self.kind == "mamba" and self.mamba is not None:
            m = self.mamba
            if m.version == 1:
                return f"mamba1({m.num_heads}, state {m.state_size})"
            return f"mamba2({m.num_heads}x{m.head_dim}, state {m.state_size})"
        return self.kind


@dataclass(frozen=True)
class MoESpec:
    num_experts: int
    top_k: int
    expert_intermediate_size: int
    num_shared_experts: int = 0
    shared_intermediate_size: int = 0  # total over shared experts
    router: str = "softmax"  # softmax | sigmoid
    num_groups: int = 1  # grouped top-k (DeepSeek n_group)
    top_k_groups: int = 1
    latent_size: int = 0  # LatentMoE (Nemotron 3 Super): routed experts work in this width behind a down /
    # up projection from and back to the hidden size; 0: the experts read the hidden states themselves


@dataclass(frozen=True)
class MLPSpec:
    kind: str  # one of MLP_KINDS
    intermediate_size: int = 0  # dense MLP width (kind == "dense")
    activation: str = "silu"
    gated: bool = True  # act(gate(x)) * up(x) vs act(up(x))
    bias: bool = False
    moe: MoESpec | None = None

    def __post_init__(self) -> None:
        if self.kind not in MLP_KINDS:
            raise ValueError(f"MLP kind {self.kind!r} not in {MLP_KINDS}")
        if self.kind == "moe" and self.moe is None:
            raise ValueError("a MoE MLP needs a MoESpec")


@dataclass(frozen=True)
class LayerSpec:
    """One decoder layer. Equal LayerSpecs are the same layer kind."""

    attention: AttentionSpec
    mlp: MLPSpec

    def describe(self) -> str:
        a = self.attention
        att = a.describe()
        if a.mla is not None and a.mla.index_topk:
            att = f"mla(sparse top-{a.mla.index_topk})"
        if self.mlp.kind == "moe" and self.mlp.moe is not None:
            m = self.mlp.moe
            latent = f", latent {m.latent_size}" if m.latent_size else ""
            mlp = f"moe({m.num_experts}x{m.expert_intermediate_size}, top{m.top_k}{latent})"
        elif self.mlp.kind == "dense":
            mlp = f"dense({self.mlp.intermediate_size})"
        else:
            mlp = "none"
        return f"{att} + {mlp}"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    model_type: str
    architecture: str  # transformers class name, e.g. LlamaForCausalLM
    hidden_size: int
    vocab_size: int
    layers: tuple[LayerSpec, ...]
    tie_word_embeddings: bool = False
    dtype: str = "bfloat16"
    max_position_embeddings: int = 0
    mtp_layers: int = 0  # MTP blocks the checkpoint ships (num_nextn_predict_layers)
    # the decoder layers inside each MTP block, in order (set at load: the model's last layer; Nemotron-H: its
    # mtp_hybrid_override_pattern, an attention block then a MoE block)
    mtp_block: tuple[LayerSpec, ...] = ()
    quantization: Mapping[str, Any] | None = None  # the config's own quantization_config
    # The source config as a dict, for the adapter that made this spec (never read downstream).
    hf_config: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # The model_type the config.json writes, before aliases (kimi_k2), translations (bailing_moe) and
    # multimodal wrappers (kimi_k25) pick the modules that build it: the model family, for the
    # measured-accuracy lookup (serving/accuracy.py). "" when the spec was made otherwise.
    written_model_type: str = field(default="", compare=False)
    schema_version: int = SCHEMA_VERSION

    @property
    def family_model_type(self) -> str:
        """The written model_type where known, else the one that builds the spec."""
        return self.written_model_type or self.model_type

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    def layer_kinds(self) -> list[tuple[LayerSpec, list[int]]]:
        """Distinct layer specs in first-appearance order, each with the indices that use it."""
        kinds: dict[LayerSpec, list[int]] = {}
        for i, layer in enumerate(self.layers):
            kinds.setdefault(layer, []).append(i)
        return list(kinds.items())

    def key(self) -> str:
        """A stable string identifying everything that changes the traced graph."""
        data = dataclasses.asdict(self)
        data.pop("hf_config", None)
        data.pop("name", None)
        data.pop("written_model_type", None)
        return json.dumps(data, sort_keys=True, default=str)
