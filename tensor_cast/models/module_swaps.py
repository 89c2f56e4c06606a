"""Per-instance module swaps: transformers modules whose forward cannot be captured as-is.

Owns the table `SWAPS` (transformers class name -> the mixin whose forward replaces it) and
`apply_module_swaps(model, decode_query_len=...)`. A swap changes one module instance's class to
a subclass of its own class with the mixin's forward: every parameter, buffer and module path
stays (so weights, parameter counts and per-op module attribution are unchanged), nothing in
transformers is patched, and other instances of the class are untouched.

Why each is needed:
- gated DeltaNet (Qwen3-Next, Qwen3.5): the torch fallback is a chunk loop of ~1,000-3,500 nodes
  per layer that takes tens of seconds to capture; the swap emits one
  `tensor_cast::gated_delta_net` op instead.
- DeepSeek sparse attention (DeepSeek-V3.2, GLM-5): transformers scores the indexer against a
  materialized mask (which the capture's no-op mask removes) and only over the keys of the step;
  the swap emits `tensor_cast::dsa_indexer` over the modelled cache and
  `tensor_cast::mla_attention` over the latent.
- Kimi-Linear (`kimi_linear.py`): KDA's torch fallback is a chunk loop like GDN's, emitted as one
  `tensor_cast::kimi_delta_attention`; its MLA layers have no RoPE, so their query is not the
  `cat(q_nope, q_rope)` `replace_mla` matches: the swap emits `tensor_cast::mla_attention` itself.
- DeepSeek-V4 (`deepseek_v4.py`): its attention's compressors, indexer and window + compressed
  attention as three ops (transformers concatenates a no-cache compressed KV under an eager masked
  softmax), its hyper-connections as `hc_pre` / `hc_post` (~90 eager ops each otherwise), its hash
  router as top-k routing over the same scores (so `replace_moe` folds the block).
- Gemma 4's MoE layers (`gemma4_moe.py`): the routed experts hang off the decoder layer beside the
  dense MLP (no MoE block to fold): emitted as one `tensor_cast::moe` from the experts module.
- Mamba-2 mixers (Nemotron-H / Nemotron 3, Granite 4.0 hybrids, Bamba; `mamba2.py`): the torch path is a chunked SSD of ~60 eager
  ops with chunk x chunk intermediates; the swap emits `tensor_cast::mamba2_scan` and the grouped
  gated norm as `tensor_cast::gated_rms_norm`.
- Llama 4's MoE block: transformers computes every expert for every token (E / k times the work);
  the swap routes the top-k through `tensor_cast::routed_experts` as the engines do (`llama4_moe.py`).
- Cohere2 MoE's experts: fused 3-D weights looped over with a one-hot mask instead of transformers'
  experts registry; the swap emits `tensor_cast::routed_experts` over the same weights (`cohere2_moe.py`).
- Mamba-1 mixers (Jamba; `mamba1.py`): the torch path is a token loop (or an associative scan) of eager ops;
  the swap emits `tensor_cast::mamba1_conv` and `tensor_cast::mamba1_scan` around the module's projections.
- Nemotron's and StableLM's decoder layers (`kwargs_layers.py`): they drop their forward's kwargs before
  the attention call, so the context carrier never reaches the attention function; the swap is the
  layer's own forward passing them on.

Must not know about costs: the swapped forwards emit ops; formulas cost them.
"""

from __future__ import annotations

from torch import nn

from .cohere2_moe import Cohere2MoeExpertsForward
from .deepseek_v4 import (
    CompressedAttentionForward,
    HashRouterAsTopK,
    HyperConnectionForward,
    HyperDecoderLayerForward,
)
from .dsa_attention import DSAAttentionForward, DSAIndexerForward
from .gated_delta_net import GatedDeltaNetForward
from .gemma4_moe import Gemma4ExpertsForward, Gemma4MoELayerForward
from .kimi_linear import KimiDeltaAttentionForward, NoPositionMLAForward
from .kwargs_layers import ParallelResidualLayerForward, PreNormLayerForward
from .llama4_moe import Llama4ExpertsForward, Llama4MoeForward
from .mamba1 import Mamba1MixerForward
from .mamba2 import Mamba2MixerForward

SWAPS: dict[str, type] = {
    "Qwen3NextGatedDeltaNet": GatedDeltaNetForward,
    "Qwen3_5MoeGatedDeltaNet": GatedDeltaNetForward,
    "Qwen3_5GatedDeltaNet": GatedDeltaNetForward,
    "DeepseekV32Attention": DSAAttentionForward,
    "GlmMoeDsaAttention": DSAAttentionForward,
    "DeepseekV32Indexer": DSAIndexerForward,
    "GlmMoeDsaIndexer": DSAIndexerForward,
    "KimiLinearDeltaAttention": KimiDeltaAttentionForward,
    "KimiLinearAttention": NoPositionMLAForward,
    "DeepseekV4Attention": CompressedAttentionForward,
    "DeepseekV4HyperConnection": HyperConnectionForward,
    "DeepseekV4DecoderLayer": HyperDecoderLayerForward,
    "DeepseekV4HashRouter": HashRouterAsTopK,
    "Gemma4TextDecoderLayer": Gemma4MoELayerForward,
    "Gemma4TextExperts": Gemma4ExpertsForward,
    "Llama4TextMoe": Llama4MoeForward,
    "Llama4TextExperts": Llama4ExpertsForward,
    "Cohere2MoeExperts": Cohere2MoeExpertsForward,
    "NemotronHMamba2Mixer": Mamba2MixerForward,
    "GraniteMoeHybridMambaLayer": Mamba2MixerForward,
    "BambaMixer": Mamba2MixerForward,
    "JambaMambaMixer": Mamba1MixerForward,
    "NemotronDecoderLayer": PreNormLayerForward,
    "StableLmDecoderLayer": ParallelResidualLayerForward,
}


_SWAPPED: dict[tuple[type, type], type] = {}


def swapped_class(original: type, mixin: type) -> type:
    """`original` with `mixin`'s forward (one class per pair, so instances share it)."""
    key = (original, mixin)
    if key not in _SWAPPED:
        _SWAPPED[key] = type(f"TensorCast{original.__name__}", (mixin, original), {"__module__": original.__module__})
    return _SWAPPED[key]


def apply_module_swaps(model: nn.Module, *, decode_query_len: int = 1) -> int:
    """Swap every module listed in `SWAPS`; returns how many were swapped.

    `decode_query_len`: the largest step (tokens per sequence) engines still run with their decode
    kernels (1 + the number of speculative draft tokens), recorded on the swapped modules.
    """
    count = 0
    for module in list(model.modules()):
        mixin = SWAPS.get(type(module).__name__)
        if mixin is None:
            continue
        module.__class__ = swapped_class(type(module), mixin)
        setattr(module, "tensor_cast_decode_query_len", decode_query_len)  # noqa: B010  (not a declared attribute)
        count += 1
    return count
