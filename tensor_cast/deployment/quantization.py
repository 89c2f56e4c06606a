"""Quantization schemes and KV-cache dtypes, as tables; reading a model's `quantization_config`.

Owns:
- `ACTIVATION_FORMATS`: how an activation is stored after `tensor_cast::quantize` (element
  dtype, bits, scale granularity and scale bytes);
- `SCHEMES`: each weight/activation scheme a user can ask for (`--quant`): bytes per weight
  element *including its scales*, the activation format (None: weight-only, activations stay in
  the model dtype), and the tensor-core precision class its GEMM runs at;
- `SAME_WEIGHTS_AS`: schemes that run a checkpoint's weights as stored, with other activations or
  another kernel;
- `CHECKPOINT_FORM_OF` / `served_scheme`: the checkpoint schemes a requested scheme is served as (fp8
  asked for on a block-FP8 checkpoint runs its blocks);
- `ENGINE_SERVES`: the scheme an engine runs a checkpoint's own scheme as by default, on which
  architectures (TensorRT-LLM runs MXFP4 experts with MXFP8 activations on Blackwell);
- `KV_CACHE_DTYPES`: bytes per cached K/V element;
- `scheme_from_hf(quantization_config)`: the scheme a checkpoint ships in (DeepSeek-V3: FP8
  block 128x128; gpt-oss: MXFP4 experts), the modules it leaves unquantized, and the routed
  experts' own scheme where they are stored apart (`expert_dtype`: DeepSeek-V4's FP4 experts
  beside FP8-block linears, `EXPERT_DTYPES`).

Pure data and lookups: no graph, no device. Byte sizes are exact rationals (sympy.Rational), so a
formula's bytes stay exact; the memory report converts them to floats.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sympy

from ..errors import DeploymentError, choices

R = sympy.Rational

# group sizes of an activation scale: >0 one scale per `group` elements along the last dim
PER_TENSOR = 0  # one scale for the whole tensor
PER_TOKEN = -1  # one scale per row (token)


@dataclass(frozen=True)
class ActivationFormat:
    """How `tensor_cast::quantize` stores an activation."""

    name: str
    bits: int  # per element (4: two elements packed per byte)
    scale_bytes: int  # bytes of one scale
    group: int  # PER_TENSOR, PER_TOKEN or elements per scale along the last dim
    dynamic: bool  # scales computed from the data each step (False: calibrated, static)


@dataclass(frozen=True)
class QuantScheme:
    """A weight (and optionally activation) quantization scheme, as engines run it."""

    name: str
    weight_bytes: Any  # bytes per weight element, scales included (sympy.Rational)
    activation: ActivationFormat | None  # None: weight-only, the GEMM reads model-dtype activations
    precision: str  # tensor-core precision class of the GEMM (backends/counts.PRECISIONS)
    description: str


def _fmt(name: str, bits: int, scale_bytes: int, group: int, dynamic: bool = True) -> ActivationFormat:
    return ActivationFormat(name=name, bits=bits, scale_bytes=scale_bytes, group=group, dynamic=dynamic)


# Scale overheads (per weight element) are part of the stored bytes:
# - FP8 block (DeepSeek-V3 checkpoint): one fp32 `weight_scale_inv` per 128x128 block;
# - AWQ/GPTQ int4, group 128: an fp16 scale and a 4-bit zero point per group of 128;
# - MXFP4 (OCP Microscaling): one E8M0 (1-byte) scale per 32 elements (MXFP8 activations likewise);
# - NVFP4: one FP8 E4M3 scale per 16 elements (plus one fp32 per tensor, negligible);
# - per-channel int8 / per-tensor fp8 scales are one float per row / tensor (negligible: 4/K).
SCHEMES: dict[str, QuantScheme] = {s.name: s for s in (
    QuantScheme("fp8", R(1), _fmt("fp8", 8, 4, PER_TENSOR), "fp8",
                "FP8 E4M3 W8A8, per-tensor weight scale, dynamic per-tensor activation scale (vLLM --quantization fp8)"),
    QuantScheme("fp8_block", 1 + R(4, 128 * 128), _fmt("fp8", 8, 4, 128), "fp8",
                "FP8 E4M3, 128x128 weight blocks, dynamic 1x128 activation groups (DeepSeek-V3 native)"),
    QuantScheme("w8a8_int8", R(1), _fmt("int8", 8, 4, PER_TOKEN), "int8",
                "INT8 W8A8, per-channel weight scale, dynamic per-token activation scale (SmoothQuant style)"),
    QuantScheme("w8a8_int8_static", R(1), _fmt("int8", 8, 4, PER_TENSOR, dynamic=False), "int8",
                "INT8 W8A8, per-channel weight scale, static (calibrated) per-tensor activation scale"),
    QuantScheme("w8a16", R(1), None, "bf16",
                "INT8 weight-only, dequantized in the GEMM (activations stay 16-bit)"),
    QuantScheme("w4a16", R(1, 2) + R(2, 128) + R(1, 2 * 128), None, "bf16",
                "INT4 weight-only, group 128 with fp16 scale + 4-bit zero (AWQ / GPTQ, Marlin kernels)"),
    QuantScheme("w4a8", R(1, 2) + R(2, 128) + R(1, 2 * 128), _fmt("fp8", 8, 4, PER_TENSOR), "fp8",
                "INT4 weights (group 128) with FP8 activations (TensorRT-LLM W4A8-AWQ)"),
    QuantScheme("mxfp4", R(1, 2) + R(1, 32), None, "bf16",
                "MXFP4 E2M1 weights, one E8M0 scale per 32; 16-bit activations (gpt-oss native experts)"),
    QuantScheme("mxfp4_marlin", R(1, 2) + R(1, 32), None, "bf16",
                "MXFP4 E2M1 weights (one E8M0 scale per 32) dequantized to 16-bit inside vLLM's Marlin MoE "
                "kernel (VLLM_MXFP4_USE_MARLIN=1): gpt-oss's experts on Hopper as InferenceMAX serves them"),
    QuantScheme("w4a8_mxfp4_mxfp8", R(1, 2) + R(1, 32), _fmt("mxfp8", 8, 1, 32), "fp8",
                "MXFP4 E2M1 weights with MXFP8 activations (E4M3, one E8M0 scale per 32 of each): FlashInfer's "
                "TRT-LLM MoE on Blackwell (vLLM VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1)"),
    QuantScheme("nvfp4", R(1, 2) + R(1, 16), _fmt("nvfp4", 4, 1, 16), "fp4",
                "NVFP4 E2M1 weights and activations, one FP8 scale per 16 (Blackwell FP4 tensor cores)"),
)}

# Schemes that run a checkpoint's stored weights as they are, with another activation path or kernel:
# asked for on that checkpoint, they keep the modules it leaves unquantized (gpt-oss's MXFP4 experts
# run with MXFP8 activations by FlashInfer's TRT-LLM MoE on Blackwell, or by vLLM's Marlin MoE; its
# attention stays 16-bit).
SAME_WEIGHTS_AS: dict[str, str] = {"w4a8_mxfp4_mxfp8": "mxfp4", "mxfp4_marlin": "mxfp4"}


@dataclass(frozen=True)
class EngineServing:
    """An engine's default for a checkpoint scheme: on these device architectures it runs it as `scheme`."""

    architectures: tuple[str, ...]
    scheme: str
    source: str


# (engine, checkpoint scheme) -> how the engine serves that checkpoint when no quantization is asked for.
# TensorRT-LLM picks the MoE activation format of an MXFP4 checkpoint at load time
# (`ModelConfig.get_mxfp4_quant_algo`, tensorrt_llm/_torch/model_config.py): on SM 100 and newer
# W4A8_MXFP4_MXFP8 for its CUTLASS and TRTLLM MoE backends (W4A8_MXFP4_FP8 for TRITON), on Hopper
# W4A16_MXFP4; the environment variable OVERRIDE_QUANT_ALGO changes it (tech blog 9, "Using the MXFP4
# Checkpoints"). vLLM and SGLang keep 16-bit activations unless told otherwise (vLLM:
# VLLM_USE_FLASHINFER_MOE_MXFP4_MXFP8=1), so they have no entry.
ENGINE_SERVES: dict[tuple[str, str], EngineServing] = {
    ("trtllm", "mxfp4"): EngineServing(
        ("blackwell", "blackwell-ultra", "blackwell-rtx"), "w4a8_mxfp4_mxfp8",
        "TensorRT-LLM ModelConfig.get_mxfp4_quant_algo: W4A8_MXFP4_MXFP8 on SM 100+ (CUTLASS / TRTLLM MoE); "
        "OVERRIDE_QUANT_ALGO=W4A16_MXFP4, here quant='mxfp4', keeps 16-bit activations"),
}


def engine_serves(engine: str, architecture: str, checkpoint: str) -> EngineServing | None:
    """The engine's own serving of a `checkpoint` scheme on `architecture` (`ENGINE_SERVES`), or None."""
    entry = ENGINE_SERVES.get((engine, checkpoint))
    return entry if entry is not None and architecture in entry.architectures else None


# A scheme asked for on a checkpoint stored in a finer form of it runs as the checkpoint: the engines
# take the granularity from the checkpoint's quantization_config, they do not re-quantize its weights.
# `--quantization fp8` on DeepSeek-V3's FP8 checkpoint (quant_method "fp8", weight_block_size
# [128, 128]) serves 128 x 128 blocks: vLLM's `Fp8Config.from_config` and SGLang's read
# `weight_block_size` from that config, and TensorRT-LLM loads the checkpoint's own quantization.
CHECKPOINT_FORM_OF: dict[str, tuple[str, ...]] = {"fp8": ("fp8_block",)}

NO_QUANT = ("none", "bf16", "fp16", "bfloat16", "float16")  # accepted spellings of "no quantization"

KV_CACHE_DTYPES: dict[str, Any] = {"bf16": R(2), "bfloat16": R(2), "fp16": R(2), "float16": R(2), "auto": None,
                                   "fp8": R(1), "fp8_e4m3": R(1), "fp8_e5m2": R(1), "int8": R(1)}


def accepted_quant() -> list[str]:
    return ["none", *SCHEMES]


def served_scheme(requested: str, checkpoint: str | None) -> str:
    """The scheme `requested` runs as on a checkpoint stored as `checkpoint`: the checkpoint's own where the
    engines read it at its granularity (`CHECKPOINT_FORM_OF`), else `requested`."""
    if checkpoint is not None and checkpoint in CHECKPOINT_FORM_OF.get(requested, ()):
        return checkpoint
    return requested


def scheme(name: str) -> QuantScheme:
    try:
        return SCHEMES[name]
    except KeyError:
        raise DeploymentError(f"unknown quantization scheme {name!r}; accepted: {choices(accepted_quant())}") from None


def kv_cache_bytes(name: str) -> Any:
    """Bytes per KV element for a `--kv-cache-dtype` (None: the model dtype, 'auto')."""
    key = name.lower()
    if key not in KV_CACHE_DTYPES:
        raise DeploymentError(f"unknown kv_cache_dtype {name!r}; accepted: {choices(KV_CACHE_DTYPES)}")
    return KV_CACHE_DTYPES[key]


@dataclass(frozen=True)
class HFQuantization:
    """What a checkpoint's `quantization_config` means here."""

    scheme: str | None  # a SCHEMES key; None: not modelled (see `note`)
    not_converted: tuple[str, ...] = ()  # module name patterns the checkpoint keeps unquantized
    note: str = ""
    experts: str | None = None  # the routed experts' SCHEMES key when stored apart from `scheme`


# a quantization_config's `expert_dtype` -> the experts' scheme. DeepSeek-V4's "fp4": E2M1 weights with
# one E8M0 scale per 32 (its inference code's fp4_block_size), run against FP8 activations quantized
# per 32 with E8M0 scales (`act_quant`, scale_fmt ue8m0): `w4a8_mxfp4_mxfp8`'s bytes and precision.
EXPERT_DTYPES: dict[str, str] = {"fp4": "w4a8_mxfp4_mxfp8"}


def _bits(cfg: Mapping[str, Any]) -> int:
    return int(cfg.get("bits", cfg.get("w_bit", 4)))


def _fp8(cfg: Mapping[str, Any]) -> str:
    block = cfg.get("weight_block_size")
    return "fp8_block" if block else "fp8"


def _compressed_tensors(cfg: Mapping[str, Any]) -> str | None:
    """compressed-tensors: the first config group's weight/activation types."""
    groups = cfg.get("config_groups") or {}
    for group in groups.values():
        weights, acts = group.get("weights") or {}, group.get("input_activations") or {}
        w_bits, w_type = weights.get("num_bits"), weights.get("type")
        a_bits = acts.get("num_bits") if acts else None
        if w_bits == 8 and w_type == "float":
            return "fp8_block" if weights.get("strategy") == "block" else "fp8"
        if w_bits == 8 and w_type == "int":
            if a_bits is None:
                return "w8a16"
            return "w8a8_int8" if acts.get("dynamic", True) else "w8a8_int8_static"
        if w_bits == 4 and w_type == "int":
            return "w4a16" if a_bits is None else "w4a8"
        if w_bits == 4 and w_type == "float":
            return "nvfp4"
    return None


# quant_method -> scheme reader (a table: add a row per checkpoint format)
HF_METHODS: dict[str, Any] = {
    "fp8": _fp8,
    "fbgemm_fp8": lambda cfg: "fp8",
    "mxfp4": lambda cfg: "mxfp4",
    "awq": lambda cfg: "w4a16" if _bits(cfg) == 4 else None,
    "gptq": lambda cfg: {4: "w4a16", 8: "w8a16"}.get(_bits(cfg)),
    "compressed-tensors": _compressed_tensors,
    "modelopt": lambda cfg: {"FP8": "fp8", "NVFP4": "nvfp4"}.get(str(cfg.get("quant_algo", "")).upper()),
}
NOT_CONVERTED_KEYS = ("modules_to_not_convert", "ignored_layers", "ignore", "exclude_modules")


def scheme_from_hf(config: Mapping[str, Any] | None) -> HFQuantization:
    """The scheme a checkpoint's `quantization_config` describes (None when there is none)."""
    if not config:
        return HFQuantization(scheme=None)
    method = str(config.get("quant_method", "")).lower()
    reader = HF_METHODS.get(method)
    name = reader(config) if reader else None
    not_converted: list[str] = []
    for key in NOT_CONVERTED_KEYS:
        value = config.get(key)
        if isinstance(value, (list, tuple)):
            not_converted += [str(v) for v in value]
    if name is None:
        return HFQuantization(scheme=None, note=(
            f"the checkpoint's quantization_config (quant_method={method!r}) is not modelled; weights costed "
            f"in the model dtype (pass quant= one of {choices(accepted_quant())})"))
    expert_dtype = config.get("expert_dtype")
    if expert_dtype is not None and str(expert_dtype).lower() not in EXPERT_DTYPES:
        return HFQuantization(scheme=name, not_converted=tuple(not_converted), note=(
            f"the checkpoint's expert_dtype={expert_dtype!r} is not modelled (known: {choices(EXPERT_DTYPES)}); its "
            f"experts are costed as {name}"))
    experts = EXPERT_DTYPES.get(str(expert_dtype).lower()) if expert_dtype is not None else None
    return HFQuantization(scheme=name, not_converted=tuple(not_converted), experts=experts)
