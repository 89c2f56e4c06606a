"""The adapter table: HF `model_type` -> the adapter that translates its config.

A table, not an if-chain: adding a family is adding a row (see CONTRIBUTING.md, "add a model
adapter"). Aliases map config names that transformers does not know to the path that builds them
(Kimi-K2 says `kimi_k2`; its architecture is DeepSeek-V3).
"""

from __future__ import annotations

from ...errors import UnsupportedModelError, choices
from .bamba import BambaAdapter
from .base import DecoderAdapter
from .deepseek import DeepseekAdapter
from .deepseek_v4 import DeepseekV4Adapter
from .gemma4 import Gemma4Adapter
from .granite_hybrid import GraniteHybridAdapter
from .hybrid import HybridLinearAdapter
from .jamba import JambaAdapter
from .kimi_linear import KimiLinearAdapter
from .moe import moe_adapters
from .multimodal import TextDecoderOf
from .nemotron_h import NemotronHAdapter

_ADAPTERS: dict[str, DecoderAdapter] = {}

# model_type written in some public configs -> the transformers model_type that builds it
MODEL_TYPE_ALIASES: dict[str, str] = {
    "kimi_k2": "deepseek_v3",  # Kimi-K2: DeepSeek-V3 architecture (DeepseekV3ForCausalLM) under its own name
}


def register(adapter: DecoderAdapter) -> DecoderAdapter:
    for model_type in adapter.model_types:
        if model_type in _ADAPTERS:
            raise ValueError(f"adapter for model_type {model_type!r} registered twice")
        _ADAPTERS[model_type] = adapter
    return adapter


register(DecoderAdapter(model_types=("llama",)))
# Llama-shaped decoders whose config uses the standard names (`layer_types` for their sliding layers):
# Apertus, SmolLM3, EXAONE 3.5 / 4, GLM-4 / GLM, Cohere Command-A (cohere2), Arcee AFM, Granite, InternLM3,
# OLMo 3, ERNIE-4.5 dense, Seed-OSS (tests/test_decoder_families.py: parameters against transformers' own modules,
# KV cache by hand)
register(DecoderAdapter(model_types=("apertus", "smollm3", "exaone", "exaone4", "glm4", "glm", "cohere2", "arcee",
                                     "granite", "internlm3", "olmo3", "ernie4_5", "seed_oss")))
# More Llama-shaped decoders under their own names: Apertus 1.5's text decoder, Meta's Code World Model (cwm:
# sliding / global layer_types), Jais 2 and nanochat (squared-ReLU MLPs), IQuest-Coder (Llama's modules),
# Granite SWA (Granite's multipliers, sliding layers), HyperCLOVA X (Granite-style multipliers), Kyutai Helium
# (tp > 1 refused: deployment/config.py TP_UNSUPPORTED)
register(DecoderAdapter(model_types=("apertus1p5_text", "cwm", "jais2", "nanochat", "iquestcoder", "granite_swa",
                                     "hyperclovax", "helium")))
# Nemotron-4 / Minitron (`nemotron`): LayerNorm1P norms, a squared-ReLU MLP without a gate, partial RoPE; its layer
# drops the forward's kwargs before attention (models/kwargs_layers.py swaps in its forward that passes them).
# transformers' default leaves num_key_value_heads None, which its own attention cannot build
register(DecoderAdapter(model_types=("nemotron",), extra_required=("num_key_value_heads",)))
# StableLM 2 / StableLM 3B (`stablelm`): LayerNorms with bias, partial RoPE, optional per-head q/k LayerNorms and
# a parallel residual (its layer is swapped like Nemotron's); tp > 1 is refused (deployment/config.py)
register(DecoderAdapter(model_types=("stablelm",), qkv_bias_field="use_qkv_bias", supports_layer_skips=False))
# VaultGemma: Gemma's attention and MLP, pre-norms named as Gemma 2's (no generic sub-block skipping)
register(DecoderAdapter(model_types=("vaultgemma",), activation_field="hidden_activation", mlp_bias_field=None,
                        supports_layer_skips=False))
# Ministral 8B (`ministral`: layer_types interleave sliding and full layers); like Hunyuan dense below, its config
# must give head_dim (transformers' default is None)
register(DecoderAdapter(model_types=("ministral",), extra_required=("head_dim",)))
# Hunyuan dense (Hunyuan-0.5B to 7B): per-head q/k RMSNorm; its config must give head_dim (transformers' default is None)
register(DecoderAdapter(model_types=("hunyuan_v1_dense",), qk_norm=True, extra_required=("head_dim",)))
# Ministral 3, Phi-3 and StarCoder2: Mistral's attention, their sliding_window (when set) on every layer
MINISTRAL3 = register(DecoderAdapter(model_types=("ministral3", "phi3"), window_applies_to_all_layers=True))
register(DecoderAdapter(model_types=("starcoder2",), window_applies_to_all_layers=True, qkv_bias_field="use_bias",
                        out_bias_field="use_bias", mlp_bias_field="use_bias"))
# Gemma / Gemma 2 (Gemma 2: sandwich norms and its sliding / global `layer_types`, as Gemma 3), OLMo / OLMo 2,
# Cohere Command-R (`cohere`), Phi-1/2 (`phi`)
register(DecoderAdapter(model_types=("gemma", "olmo", "olmo2", "cohere", "phi")))
register(DecoderAdapter(model_types=("gemma2",), activation_field="hidden_activation", mlp_bias_field=None,
                        supports_layer_skips=False))
MISTRAL = register(DecoderAdapter(model_types=("mistral",), window_applies_to_all_layers=True,
                                  qkv_bias_field=None, out_bias_field=None, mlp_bias_field=None))
# Mistral 3 (Mistral3ForConditionalGeneration: Mistral Small 3.1 / 3.2, Magistral, Devstral; Ministral 3): its text decoder
register(TextDecoderOf(model_types=("mistral3",), texts=(MISTRAL, MINISTRAL3)))
register(DecoderAdapter(model_types=("qwen2",), qkv_bias_always=True, qkv_bias_field=None,
                        out_bias_field=None, mlp_bias_field=None))
register(DecoderAdapter(model_types=("qwen3",), qk_norm=True, out_bias_field="attention_bias",
                        mlp_bias_field=None))
# Gemma 3: sandwich norms (pre/post attention and feed-forward), so no generic sub-block skipping.
GEMMA3_TEXT = register(DecoderAdapter(model_types=("gemma3_text",), qk_norm=True, activation_field="hidden_activation",
                                      mlp_bias_field=None, supports_layer_skips=False))
register(TextDecoderOf(model_types=("gemma3",), texts=(GEMMA3_TEXT,)))
# Gemma 4 (dense): global layers with their own head width / KV heads (per_layer_config), K = V on them
GEMMA4_TEXT = register(Gemma4Adapter(model_types=("gemma4_text",), qk_norm=True, activation_field="hidden_activation",
                                     mlp_bias_field=None, supports_layer_skips=False))
register(TextDecoderOf(model_types=("gemma4",), texts=(GEMMA4_TEXT,)))
for _moe_adapter in moe_adapters():  # MoE families: the rows live in adapters/moe.py
    register(_moe_adapter)
register(TextDecoderOf(model_types=("llama4",), texts=(_ADAPTERS["llama4_text"],)))  # Llama 4: its text decoder
# Qwen3-VL (dense and MoE): the text decoder is Qwen3's / Qwen3-MoE's modules (multimodal.py says why it is exact)
register(TextDecoderOf(model_types=("qwen3_vl",), texts=(_ADAPTERS["qwen3"],), text_as={"qwen3_vl_text": "qwen3"},
                       wrapper_ties_embeddings=True))
register(TextDecoderOf(model_types=("qwen3_vl_moe",), texts=(_ADAPTERS["qwen3_moe"],),
                       text_as={"qwen3_vl_moe_text": "qwen3_moe"}, wrapper_ties_embeddings=True,
                       text_fields={"norm_topk_prob": True}))  # Qwen3-VL-MoE's router always renormalizes
# MLA families (latent KV cache; DeepSeek sparse attention where `sparse_index`)
# glm4_moe_lite: GLM-4.7-Flash; deepseek_v2: DeepSeek-V2 / V2.5 / V2-Lite (softmax routing, complex-table RoPE)
DEEPSEEK_V3 = register(DeepseekAdapter(model_types=("deepseek_v3", "glm4_moe_lite", "deepseek_v2")))
# A.X K1 (SKT, axk1): DeepSeek-V3's layout (dense layers where mlp_layer_types says) with a norm on each MoE
# block's output (replace_moe leaves it after the folded op)
register(DeepseekAdapter(model_types=("axk1",)))
# Sarvam's MLA MoE (sarvam_mla): transformers builds it as DeepSeek-V3's modules (DeepseekV3ForCausalLM)
register(DeepseekAdapter(model_types=("sarvam_mla",)))
register(TextDecoderOf(model_types=("kimi_k25",), texts=(DEEPSEEK_V3,)))  # Kimi-K2.5: MoonViT + Kimi-K2's DeepSeek-V3 decoder
register(DeepseekAdapter(model_types=("deepseek_v32", "glm_moe_dsa"), sparse_index=True))
# DeepSeek-V4: sliding-window + compressed (CSA / HCA) attention, hyper-connections, hash-routed first MoE layers
register(DeepseekV4Adapter(model_types=("deepseek_v4",)))
# hybrid gated DeltaNet (linear attention) + gated full attention
register(HybridLinearAdapter(model_types=("qwen3_next",), shipped_mtp_layers=1))
QWEN3_5_MOE_TEXT = register(HybridLinearAdapter(model_types=("qwen3_5_moe_text",), dense_layers_field=None,
                                                mtp_field="mtp_num_hidden_layers"))
register(TextDecoderOf(model_types=("qwen3_5_moe",), texts=(QWEN3_5_MOE_TEXT,)))
QWEN3_5_TEXT = register(HybridLinearAdapter(model_types=("qwen3_5_text",), moe=False, mtp_field="mtp_num_hidden_layers"))
register(TextDecoderOf(model_types=("qwen3_5",), texts=(QWEN3_5_TEXT,)))
# Kimi-Linear: KDA (per-channel-gated DeltaNet) + MLA without RoPE, DeepSeek-style MoE under Kimi's names
register(KimiLinearAdapter(model_types=("kimi_linear",)))
# Nemotron-H / Nemotron 3 Nano: one mixer per block (Mamba-2, NoPE attention, squared-ReLU MLP or MoE)
register(NemotronHAdapter(model_types=("nemotron_h",)))
# Granite 4.0 hybrids: Mamba-2 or GQA mixers, then MoE beside a shared MLP (or the shared MLP alone)
register(GraniteHybridAdapter(model_types=("granitemoehybrid",)))
register(BambaAdapter(model_types=("bamba",)))
register(JambaAdapter(model_types=("jamba",)))


def supported_model_types() -> list[str]:
    return sorted(_ADAPTERS)


def adapter_for(model_type: str) -> DecoderAdapter:
    model_type = MODEL_TYPE_ALIASES.get(model_type, model_type)
    try:
        return _ADAPTERS[model_type]
    except KeyError:
        raise UnsupportedModelError(
            f"model_type {model_type!r} is not supported; supported model types: "
            f"{choices(supported_model_types())} (all of them: tensor-cast models --families)"
        ) from None
