"""Which rows of an AIConfigurator kernel table an engine's fit reads, and which of its structural rules apply.

Owns the per-engine facts the AIC readers (`aic_tables.py`) and the fit (`aic_fit.py`) used to hold as
vLLM constants: for every table, the `kernel_source` values that time the kernel the engine runs by
default (and the ones it runs only under a flag or as a fallback), how the harness launched them, and
the structural switches of the engine's kernels that the fit fixes per architecture (FlashAttention-3
tiles and PackGQA, the split-KV cap, the custom all-reduce's size limit, the sparse-MLA head padding).
A table of `EngineKernels`, one entry per engine (`ENGINES`); a new engine adds an entry, not branches.

Which engine a folder of tables measured is read from the tables themselves (`framework` column:
`VLLM` / `vLLM`, `TRTLLM`, `SGLANG`; `engine_of`), so the same folder is read the same way whatever
section it is checked against.

Facts per engine, from the AIConfigurator collectors (`collector/<engine>/collect_*.py`; facts only)
and the engines' dispatch code:
- vLLM 0.24 (`VLLM`): see the comments of each field; these are the rules aic_tables / aic_fit applied
  before this module existed, unchanged.
- TensorRT-LLM 1.3.0rc20 (`TRTLLM`, AIConfigurator 0.12.0's packaged tables): every GEMM row is
  `torch_flow` (TRT-LLM's Linear, collector/trtllm/collect_gemm.py: bf16; per-tensor fp8 (the
  collector loads no input_scale, so the activation scale is computed per call); block fp8 by CUTLASS
  on Hopper, DeepGEMM on Blackwell (`deepgemm`); NVFP4 on Blackwell), each replayed in a CUDA graph
  over up to 5 weight copies that together exceed L2 (so the rows are DRAM-bound where the weights
  are): B200 DeepGEMM takes 9.3 us at M = 1, N = K = 4096, no host floor as vLLM's DeepGEMM rows
  have; attention `torch_flow` is
  TRT-LLM's own backend (FMHA for prefill, XQA / MMHA for decode), `torch_flow_flashinfer` the
  optional FlashInfer backend (not the default: evaluated only); the fused MoE
  (collector/trtllm/collect_moe.py) runs `create_moe` with RenormalizeMoeRoutingMethod (plain top-k:
  no group-limited routing, whatever the model) on the backend TRT-LLM picks: CUTLASS
  (`moe_torch_flow_cutlass`; Nemotron's ungated experts `moe_torch_flow_nongated`) for bf16 / fp8 /
  Hopper block fp8 / NVFP4, DeepGEMM (`deepgemm`) for Blackwell block fp8, TRT-LLM-gen
  (`moe_torch_flow`) for MXFP4 on Blackwell, Triton (`moe_torch_flow`) for gpt-oss MXFP4 on Hopper;
  `moe_torch_flow_min_latency` is TRT-LLM-gen's NVFP4 min-latency mode with DeepSeek-V3's
  group-limited router (a serving flag: evaluated only). Power-law rows cycle 5 draws in one CUDA
  graph as vLLM's collector does. TRT-LLM's MoE permutes only the rank's own experts' rows under EP.
  The custom all-reduce rows (`TRTLLM`) time TRT-LLM's AllReduce with its AUTO strategy at every size
  (it switches to NCCL by itself): all rows are what a served all-reduce costs.
"""

from __future__ import annotations

import csv
import gzip
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from tensor_cast.deployment.quantization import PER_TENSOR, PER_TOKEN
from tensor_cast.errors import TensorCastError


def _frozen(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class EngineKernels:
    """One engine's reading of the AIC tables (see the module docstring)."""

    name: str  # the efficiency section it fits (tensor_cast.backends.engines)
    label: str  # how the tables' kernels are named in reports
    # table gemm_dtype -> GEMM variant, and variant -> the kernel_source rows of the kernel the engine runs
    gemm_dtypes: Mapping[str, str]
    gemm_kernels: Mapping[str, tuple[str, ...]]
    host_timed_gemms: tuple[str, ...]  # variants whose rows were launched eagerly (host floor in them)
    fp8_dynamic_quant: bool  # fp8 rows quantize the activation with a dynamic per-tensor scale (else a static one)
    quant_bound_rows: bool  # report the quantization-bound fp8 rows as their own class (aic_tables.quant_bound_cases)
    attention_excluded: tuple[str, ...]  # attention kernel_sources the engine does not run by default
    attention_max_head_dim: int
    moe_kernels: Mapping[str, tuple[str, ...]]  # moe_dtype -> default kernel, the first one a device's table has
    moe_also: Mapping[str, tuple[str, ...]]  # moe_dtype -> kernels also read (a model class's own kernel)
    flag_moe_kernels: Mapping[tuple[str, str], str]  # (moe_dtype, kernel substring) -> scheme: evaluated only
    local_rows_markers: tuple[str, ...]  # kernel_source substrings of MoE kernels that permute only local rows
    group_limited_routing: bool  # the harness routes group-limited models (aic_tables.GROUP_LIMITED_MOE) so
    ungated_moe_kernels: tuple[str, ...]  # MoE kernel_sources that run ungated experts (one up projection)
    custom_allreduce_kernel: str  # the custom_allreduce_perf kernel_source the engine runs
    custom_max_mib: float  # the custom all-reduce's size limit (larger ones go to NCCL)
    native_norm_devices: frozenset[str]  # devices whose MLA module rows ran the unfused RMSNorm chain
    gdn_kernels: Mapping[str, tuple[str, ...]]  # gdn_perf phase -> the two kernel rows of one layer
    # structural switches the fit fixes, by architecture
    pack_gqa: Mapping[str, int]
    fa3_tiles: Mapping[str, int]
    max_splits: int  # split-KV cap of the decode kernel in CUDA graphs
    dsa_kernel_switches: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    # activation scale of the fp8 (not block) GEMM rows: PER_TENSOR, or PER_TOKEN (one scale a row)
    fp8_act_group: int = PER_TENSOR
    # dsa module kernel_source substrings of paths tensor_cast does not trace (dense MHA prefill, layers that
    # reuse another layer's top-k): not read
    dsa_excluded: tuple[str, ...] = ()
    # attention rows' attn_dtype read: 16-bit queries, and where the engine's 8-bit-cache prefill runs in fp8
    # (FA3 / TRT-LLM-gen with an fp8 cache in SGLang) the fp8 rows, costed as the fp8-cache class
    attention_dtypes: tuple[str, ...] = ("bfloat16",)
    # stage name -> the note written as the [sources] line of the stage's fixed keys (overrides aic_fit's)
    stage_notes: Mapping[str, str] = field(default_factory=dict)
    # stage name -> keys set, not fitted, for this engine's kernel (added to the stage's fixed keys)
    stage_fixed: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


VLLM = EngineKernels(
    name="vllm", label="vLLM 0.24 kernels",
    gemm_dtypes=_frozen({"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}),
    gemm_kernels=_frozen({"bf16": ("torch.nn.functional.linear",), "fp8": ("CutlassFP8ScaledMMLinearKernel",),
                          "fp8_block": ("DeepGemmFp8BlockScaledMMKernel",),
                          "nvfp4": ("FlashInferCuteDslNvFp4LinearKernel",)}),
    # DeepGEMM rows never take less than ~80 us (H100) / ~170 us (B200) per call: launched eagerly
    host_timed_gemms=("fp8_block",),
    fp8_dynamic_quant=True, quant_bound_rows=True,
    # vLLM picks FA3 on Hopper, FlashInfer TRT-LLM on Blackwell; the Triton rows time a fallback backend.
    # FlashAttention-3 runs head_dim <= 256; the d = 512 rows time another kernel (7-50x slower).
    attention_excluded=("vllm_triton_attn",), attention_max_head_dim=256,
    # The fused-MoE kernel vLLM 0.24 runs by default per dtype, first one a device's table has: on Hopper
    # Triton (per-tensor fp8 ModelOpt checkpoints: FlashInfer's CUTLASS kernel; gpt-oss MXFP4: the OAI
    # triton_kernels), on Blackwell FlashInfer's TRT-LLM kernels; int4 on both: Marlin (backends/moe_tiles.py
    # MOE_KERNELS says the same per architecture).
    moe_kernels=_frozen({
        "bfloat16": ("vllm_unquantizedfusedmoe_triton_tritonexperts",
                     "vllm_unquantizedfusedmoe_flashinfer_trtllm_trtllmbf16experts"),
        "fp8_block": ("vllm_fp8moe_triton_tritonexperts", "vllm_fp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic"),
        "fp8": ("vllm_modeloptfp8moe_flashinfer_trtllm_trtllmfp8expertsmonolithic",
                "vllm_modeloptfp8moe_flashinfer_cutlass_flashinferexperts"),
        "w4a16_mxfp4": ("vllm_gptossmxfp4moe_triton_oaitritonmxfp4expertsmonolithic",
                        "vllm_gptossmxfp4moe_flashinfer_trtllm_mxfp4_bf16_trtllmmxfp4expertsmonolithic"),
        "w4a8_mxfp4_mxfp8": ("vllm_mxfp4moe_flashinfer_trtllm_mxfp4_mxfp8_trtllmmxfp4expertsmodular",),
        "int4_wo": ("vllm_compressedtensorswna16marlinmoe_marlin_marlinexperts",),
        "nvfp4": ("vllm_compressedtensorsw4a4nvfp4moe_flashinfer_trtllm_trtllmnvfp4expertsmonolithic",)}),
    moe_also=_frozen({}),
    # VLLM_MXFP4_USE_MARLIN=1: MXFP4 experts on Marlin, costed with the int4 Marlin fit
    flag_moe_kernels=_frozen({("w4a16_mxfp4", "marlin"): "mxfp4_marlin"}),
    local_rows_markers=("flashinfer", "oaitriton"),  # aic_tables.local_rows_only
    group_limited_routing=True,
    ungated_moe_kernels=(),  # the ungated configurations are told by shape (aic_tables.UNGATED_MOE)
    custom_allreduce_kernel="vLLM_custom_graph",  # vLLM runs it inside CUDA graphs
    custom_max_mib=8.0,  # vLLM's CustomAllreduce max_size default: 8192 * 1024 bytes
    native_norm_devices=frozenset({"NVIDIA H100 80GB HBM3"}),
    gdn_kernels=_frozen({"context": ("causal_conv1d_fn", "chunk_gated_delta_rule_flashinfer"),
                         "generation": ("causal_conv1d_update", "fused_recurrent_gated_delta_rule_packed_decode")}),
    # FlashAttention-3 (Hopper) takes PackGQA on every varlen call, as vLLM's prefill is; FlashInfer's TRT-LLM
    # FMHA (Blackwell) follows the tables better unpacked (held-in error 14% vs 16% packed on B200's bf16 rows),
    # one CTA column per query head
    pack_gqa=_frozen({"hopper": 1, "blackwell": 0}),
    # the decode runs FA3's own k-blocks, split rule and window blocks (`attention_tiles.decode_tiles(...,
    # fa3=True)`) on Hopper; Blackwell runs FlashInfer's TRT-LLM decode kernel, modelled with 128-key blocks
    fa3_tiles=_frozen({"hopper": 1, "blackwell": 0}),
    max_splits=32,  # VLLM_FLASH_ATTN_MAX_NUM_SPLITS_FOR_CUDA_GRAPH default
    # vLLM 0.24's FlashMLA sparse backend (aic_fit.DSA_KERNEL_SWITCHES says why)
    dsa_kernel_switches=_frozen({
        "hopper": _frozen({"efficiency.attention_dsa_head_pad": 64, "efficiency.attention_fp8kv_dsa_head_pad": 64,
                           "efficiency.attention_fp8kv_dsa_prefill_min_heads": 32}),
        "blackwell": _frozen({"efficiency.attention_dsa_head_pad": 128, "efficiency.attention_dsa_pad_min_heads": 17,
                              "efficiency.attention_fp8kv_dsa_head_pad": 0})}),
)

SGLANG = EngineKernels(
    name="sglang", label="SGLang 0.5.14 kernels",
    gemm_dtypes=_frozen({"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}),
    gemm_kernels=_frozen({"bf16": ("sglang_torch_linear",), "fp8": ("sglang_sgl_kernel_fp8_scaled_mm",),
                          "fp8_block": ("sglang_deepgemm_gemm_nt_f8f8bf16",),
                          "nvfp4": ("sglang_flashinfer_cutedsl_nvfp4",)}),
    # every GEMM row is a CUDA-graph replay (DeepGEMM's smallest rows: 3.4 us on H100, 4.2 us on B200)
    host_timed_gemms=(),
    fp8_dynamic_quant=True, quant_bound_rows=False, fp8_act_group=PER_TOKEN,
    # FA3 on Hopper, TRT-LLM-gen MHA on Blackwell; Triton and FlashInfer rows time optional backends
    attention_excluded=("triton", "flashinfer"), attention_max_head_dim=256, attention_dtypes=("bfloat16", "fp8"),
    moe_kernels=_frozen({
        "bfloat16": ("sglang_flashinfer_trtllm_moe", "sglang_fused_moe_triton"),
        "fp8_block": ("sglang_flashinfer_trtllm_moe", "sglang_fused_moe_triton"),
        "nvfp4": ("sglang_flashinfer_trtllm_moe",),
        "w4a16_mxfp4": ("sglang_flashinfer_trtllm_moe", "sglang_fused_moe_triton"),
        "w4a8_mxfp4_mxfp8": ("sglang_mxfp4_flashinfer_trtllm_moe",),
        "int4_wo": ("sglang_marlin_moe", "sglang_flashinfer_trtllm_moe")}),
    moe_also=_frozen({}),
    flag_moe_kernels=_frozen({}),
    # the collector times rank 0's own work only (build_rank0_local_workload: the tokens that pick one of its
    # experts, remote picks masked to -1), whatever the kernel
    local_rows_markers=("sglang",),
    group_limited_routing=True,
    ungated_moe_kernels=(),  # Nemotron's ungated experts: the shapes of aic_tables.UNGATED_MOE
    custom_allreduce_kernel="SGLang_CustomAllReduce_graph",
    # the tables' custom rows beat NCCL up to 16 MiB (8 GPUs: H100 110 vs 122 us, B200 58 vs 99 us) and equal
    # it from 32 MiB (198 / 170 us, within 1%): the custom kernel runs up to 16 MiB
    custom_max_mib=16.0,
    native_norm_devices=frozenset(),
    gdn_kernels=_frozen({"context": ("causal_conv1d_fn", "chunk_gated_delta_rule"),
                         "generation": ("causal_conv1d_update", "fused_recurrent_gated_delta_rule_packed_decode")}),
    pack_gqa=_frozen({"hopper": 1, "blackwell": 0}),
    fa3_tiles=_frozen({"hopper": 1, "blackwell": 0}),
    max_splits=32,
    # SGLang's NSA backends: FlashMLA sparse (bf16 cache) and FlashMLA's fp8 KV kernel (fp8 cache, prefill
    # included: the context rows' kernel_source) on Hopper, heads padded to 64; TRT-LLM-gen sparse MLA on
    # Blackwell (decode, and fp8-cache prefill), unpadded
    dsa_kernel_switches=_frozen({
        "hopper": _frozen({"efficiency.attention_dsa_head_pad": 64, "efficiency.attention_fp8kv_dsa_head_pad": 64,
                           "efficiency.attention_fp8kv_dsa_prefill_min_heads": 1024}),
        "blackwell": _frozen({"efficiency.attention_dsa_head_pad": 0, "efficiency.attention_fp8kv_dsa_head_pad": 0})}),
    dsa_excluded=("dense_mha", "skip_indexer"),
    stage_notes=_frozen({
        "gemm fp8": "sgl-kernel fp8_scaled_mm (CUTLASS) with SGLang's dynamic per-token activation quantization in "
                    "front (AIConfigurator collector/sglang/collect_gemm.py: sgl_per_token_quant_fp8); tile and "
                    "cluster by M and N (backends/gemm_tiles.py); no split-K",
        "gemm fp8_block": "tiles 128x128 (DeepGEMM block-scaled fp8 with SGLang's per-token-group quantization in "
                          "front); 1 us fixed GPU cost and no split-K (DeepGEMM's); every SGLang row is a CUDA-graph "
                          "replay (smallest 3.4 us on H100, 4.2 us on B200), so no eager host floor is in them: "
                          "call floors 0, not measured",
        "custom all_reduce": "SGLang custom all-reduce in CUDA graphs (SGLang_CustomAllReduce_graph rows), up to "
                             "16 MiB (above it the tables' rows equal NCCL's)",
        "dsa": "DeepSeek sparse attention layer as SGLang runs it (bf16 latent cache; rows with the indexer, "
               "aic_engine_kernels.SGLANG dsa_excluded); heads padded to 64 on Hopper (FlashMLA sparse), unpadded "
               "on Blackwell (TRT-LLM-gen sparse MLA)",
        "dsa fp8kv": "DeepSeek sparse attention layer as SGLang runs it (fp8 latent cache): FlashMLA's fp8 KV kernel "
                     "for prefill and decode on Hopper (heads padded to 64), TRT-LLM-gen sparse MLA on Blackwell",
    }),
)

TRTLLM = EngineKernels(
    name="trtllm", label="TensorRT-LLM 1.3.0rc20 kernels",
    gemm_dtypes=_frozen({"bfloat16": "bf16", "fp8": "fp8", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}),
    gemm_kernels=_frozen({"bf16": ("torch_flow",), "fp8": ("torch_flow",), "fp8_block": ("torch_flow", "deepgemm"),
                          "nvfp4": ("torch_flow",)}),
    host_timed_gemms=(),  # every GEMM row is a CUDA-graph replay (collect_gemm.py, benchmark_with_power)
    fp8_dynamic_quant=True,  # the collector loads no input_scale: the scale is computed per call
    quant_bound_rows=False,  # that class isolates vLLM's dynamic-quant kernel (aic_tables.QUANT_BOUND_CLASS)
    # TRT-LLM's own attention backend (FMHA / XQA); FlashInfer is an optional backend
    attention_excluded=("torch_flow_flashinfer",), attention_max_head_dim=256,
    moe_kernels=_frozen({
        "bfloat16": ("moe_torch_flow_cutlass",), "fp8": ("moe_torch_flow_cutlass",),
        # DeepGEMM on Blackwell (only its tables have it), CUTLASS on Hopper: the first kernel the table has wins
        "fp8_block": ("deepgemm", "moe_torch_flow_cutlass"),
        "w4a16_mxfp4": ("moe_torch_flow",),  # Triton on Hopper, TRT-LLM-gen on Blackwell
        "w4a8_mxfp4_mxfp8": ("moe_torch_flow",), "nvfp4": ("moe_torch_flow_cutlass",)}),
    # Nemotron-3's ungated (ReLU^2) experts: CUTLASS's non-gated path (collect_moe.py's NON_GATED_MOE_MODELS)
    moe_also=_frozen({d: ("moe_torch_flow_nongated",) for d in ("bfloat16", "fp8", "nvfp4")}),
    flag_moe_kernels=_frozen({}),  # min-latency NVFP4 (TRT-LLM-gen, DeepSeek routing): not read
    local_rows_markers=("moe_torch_flow", "deepgemm"),  # TRT-LLM's fused MoE permutes only the rank's experts' rows
    group_limited_routing=False,  # RenormalizeMoeRoutingMethod for every model (collect_moe.py)
    # Nemotron-3's ReLU^2 experts, e.g. H 8,192, I 5,120, k 22, E 512, which aic_tables.UNGATED_MOE does not list:
    # costed gated, B200 bf16 rows would stream the hit experts' weights at 1.2x HBM's datasheet rate
    ungated_moe_kernels=("moe_torch_flow_nongated",),
    custom_allreduce_kernel="TRTLLM",
    # TRT-LLM's AUTO all-reduce times as NCCL (nccl_perf, same sizes, within ~5%) from 8M elements (16 MB) at 2
    # H100s, 2M at 4 and 512K at 8; B200 from 16M elements: the custom kernel's rows are fitted up to 8 MiB (as
    # vLLM's limit), larger all-reduces costed as NCCL
    custom_max_mib=8.0,
    native_norm_devices=frozenset(),  # TRT-LLM's MLA module runs its fused RMSNorm
    gdn_kernels=_frozen({"context": ("causal_conv1d_fn", "chunk_gated_delta_rule"),
                         "generation": ("causal_conv1d_update", "fused_recurrent_gated_delta_rule")}),
    # TRT-LLM's FMHA / XQA are not FlashAttention-3: no FA3 tiles, one CTA column per query head
    pack_gqa=_frozen({"hopper": 0, "blackwell": 0}),
    fa3_tiles=_frozen({"hopper": 0, "blackwell": 0}),
    max_splits=32,  # XQA's multi-block count is not identified from the tables: vLLM's cap kept
    dsa_kernel_switches=_frozen({}),  # TRT-LLM's sparse MLA head padding not identified: none
    stage_fixed=_frozen({
        # TRT-LLM's per-tensor fp8 GEMM is not CUTLASS's vLLM dispatch table (backends/gemm_tiles.py): tile model off
        "gemm fp8": _frozen({"efficiency.gemm_fp8_tile_switch": 0, "efficiency.gemm_fp8_pad_rows": 0}),
        # graph-replayed rows: no eager launcher floor to fit (TRT-LLM launches its GEMMs from C++)
        "gemm fp8_block": _frozen({"efficiency.gemm_fp8_block_call_floor_us": 0.0,
                                   "efficiency.gemm_fp8_block_unaligned_floor_us": 0.0}),
    }),
    stage_notes=_frozen({
        "attention prefill": "TRT-LLM's FMHA prefill (not FlashAttention-3: FA3 tiles and PackGQA off), 128 x 128 "
                             "tiles; the cache append modelled as vLLM's one block per new token",
        "attention prefill fp8kv": "TRT-LLM's FMHA prefill over an fp8 KV cache (FA3 tiles and PackGQA off)",
        "attention decode": "TRT-LLM's XQA / MMHA decode modelled as split-KV over 128-key blocks (FA3 tiles off); "
                            "the split cap (32) not identified from the tables",
        "custom all_reduce": "TRT-LLM AllReduce (AUTO strategy) in CUDA graphs, fitted up to 8 MiB; larger ones "
                             "cost as NCCL (the tables time them as NCCL)",
        "gemm fp8": "TRT-LLM's per-tensor fp8 Linear (activation quantized per call, then the scaled GEMM), tile "
                    "model off: not vLLM's CUTLASS dispatch",
        "gemm fp8_block": "TRT-LLM's block-fp8 Linear (CUTLASS on Hopper, DeepGEMM on Blackwell), rows replayed in "
                          "CUDA graphs: no eager floor; 1 us fixed GPU cost, no split-K",
    }),
)

ENGINES: Mapping[str, EngineKernels] = _frozen({e.name: e for e in (VLLM, SGLANG, TRTLLM)})
# the tables' `framework` column (lower-cased) -> engine
FRAMEWORKS: Mapping[str, str] = _frozen({"vllm": "vllm", "sglang": "sglang", "trtllm": "trtllm"})


# tables every engine's folder holds the same copy of (NCCL is not the engine's kernel)
SHARED_TABLES = ("nccl_perf.csv.gz",)


class UnknownEngineTables(TensorCastError):
    """A folder of AIC tables measured by an engine without an entry here."""


def kernels(engine: str) -> EngineKernels:
    if engine not in ENGINES:
        raise UnknownEngineTables(f"no AIC kernel-table entry for engine {engine!r}; known: {', '.join(ENGINES)}")
    return ENGINES[engine]


def engine_of(folder: str | Path) -> str:
    """The engine whose kernels a folder of AIC tables timed, from the `framework` column of its
    first table (every table of a folder comes from one collector run)."""
    for path in sorted(Path(folder).glob("*.csv.gz")):
        if path.name in SHARED_TABLES:
            continue
        with gzip.open(path, "rt", newline="") as handle:
            row = next(csv.DictReader(handle), None)
        if row and row.get("framework"):
            framework = row["framework"].lower()
            if framework not in FRAMEWORKS:
                raise UnknownEngineTables(f"{path}: framework {row['framework']!r} has no AIC kernel-table entry; "
                                          f"known: {', '.join(FRAMEWORKS)}")
            return FRAMEWORKS[framework]
    raise UnknownEngineTables(f"no AIC table with a framework column in {folder}")
