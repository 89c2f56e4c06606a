"""Efficiency models: how close an op of a given kind and shape gets to the device's peaks.

Owns `efficiency_for(kind, counts, profile) -> Efficiency` (shape models read the kernel shape
the cost rule returned with its counts, `Counts.kernel`; they never re-read op arguments), the parameter table those
models read (the device profile's efficiency section of the selected engine,
`[efficiency.<engine>]`, see `backends/engines.py`; `EFFICIENCY_KEYS`) and its validator.
It never produces seconds itself: `backends/roofline.py` turns counts plus an `Efficiency`
into time,

    time = max(compute, memory, comm) + overlap · min(compute, memory) + latency + launch overhead
    compute = Σ_precision FLOPs / (peak · compute fraction)
    memory  = bytes / (bandwidth · memory fraction) + memory latency

Every value may be a sympy expression in B, S, C (Max/Min/ceiling only, no Python `if` on a
size), so a symbolic trace keeps working.

Why one file of ~890 lines: the key table (`EFFICIENCY_KEYS`, bounds, `MODEL_DEFAULTS`), its
validator and the shape models that read those keys change together (a new kernel term is a key,
a bound, a default and a model); the per-kind models are sections below (GEMM, quantization,
attention with its MLA / DSA / gated-DeltaNet variants). The attention section has grown to ~390
lines with FlashAttention-3's kernel facts (its tile tables live in `attention_tiles.py`): it is
the next to move into a module of its own, the key table staying here.

Parameters, looked up per kind with fallbacks (so a profile that only has the flat `gemm`,
`vector`, `memory` fractions keeps working, with no latency and no overlap penalty):

| key                              | meaning                                          | fallback       |
| -------------------------------- | ------------------------------------------------ | -------------- |
| `<kind>_compute_<precision>`     | fraction of that precision's peak                | `<kind>_compute` |
| `<kind>_compute`                 | fraction of the tensor-core peak                 | `gemm`, 1      |
| `<kind>_vector`                  | fraction of the vector (CUDA-core) peak          | `vector`, 1    |
| `<kind>_memory`                  | asymptotic fraction of memory bandwidth          | `memory`, 1    |
| `<kind>_memory_latency_us`       | bandwidth ramp: achieved BW(b) = BW·b/(b + BW·t) | 0              |
| `<kind>_latency_us`              | fixed kernel latency (beyond the launch gap)     | 0              |
| `<kind>_overlap`                 | share of min(compute, memory) not overlapped     | 0              |

Shape models (one function per kind, in the `SHAPE_MODELS` table) refine these:

- **gemm** (`gemm_*`): `gemm_compute` is the measured large-GEMM ceiling at K = 8192. A tiled
  GEMM pays a fixed prologue/epilogue per output tile, worth `gemm_k_overhead` steps of K, so
  the compute fraction scales by (1 + K0/8192) / (1 + K0/K); `gemm_epilogue_overlap` (o) is the
  share of the shorter of the K loop and that per-tile work hidden under the other (a persistent
  kernel storing one tile while it computes the next): a tile takes K + K0 − o·min(K, K0) steps. Wave quantization: with tiles of
  `gemm_tile_m` × `gemm_tile_n` over `compute_units` SMs, a fraction `gemm_wave_quantization`
  of the idle slots of the last wave is lost (0: stream-K / heuristics hide it; 1: classic
  waves). Small GEMMs stream their weights (`gemm_memory`); when the output tiles
  (`gemm_splitk_tile_n` columns × `gemm_tile_m` rows) cannot fill the SMs, cuBLAS splits K and
  pays up to `gemm_splitk_us` for the extra reduction: latency + splitk_us · max(0, 1 − CTAs/SMs).
  An engine runs different kernels per GEMM variant (`GemmShape.variant`, the quant_linear scheme,
  else the FLOPs' precision: bf16, fp8, fp8_block, ...): `gemm_<variant>_<parameter>` overrides
  `gemm_<parameter>` for that variant (e.g. `gemm_fp8_wave_quantization` for CUTLASS fp8).
  `gemm_<variant>_tile_switch` = 1: the tile (its CTA cluster along M and N, and on Blackwell the
  2-SM MMA's CTA pair) comes from the engine's kernel-switch table for the architecture
  (`backends/gemm_tiles.py`, by M, N and K: vLLM's CUTLASS fp8 dispatch), a Piecewise in a
  symbolic M; the wave quantization counts the CTAs it launches (`Tile.ctas`);
  `gemm_<variant>_sm_gbps`: the operand bandwidth one SM sustains, which caps a small tile's rate
  at its arithmetic intensity.
  `gemm_<variant>_pad_rows` = 1 (with the tile switch): tile quantization along M — a CTA's MMA
  covers its rows (`Tile.cta_m`) whether M fills them or not, so the tensor-core rate is
  scaled by M / (ceil(M / cta_m) · cta_m): a 17-row GEMM in 64-row tiles costs a 64-row one.
  `gemm_<variant>_call_floor_us`: a launcher whose host-side work per call (DeepGEMM's Python
  wrapper: scale-layout transforms, kernel lookup) outlasts a small GEMM; an eagerly launched call
  takes max(floor, its GPU time), a CUDA-graph replay only the GPU time (`roofline.op_time`).
  `gemm_<variant>_unaligned_floor_us` adds to that floor when M is not a multiple of 4: the fp32
  per-token scales' rows then miss TMA's 16-byte alignment and are re-laid out first.
  `gemm_<variant>_cta_gbps` (memory side): while the output tiles (`gemm_tile_m` ×
  `gemm_splitk_tile_n`) cannot fill the SMs, each tile's CTA walks its K range reading (tile rows +
  tile columns) operand elements per step at most at that rate, K split into
  ceil(K / `gemm_<variant>_splitk_k`) slices of one CTA each (0: no split-K, as CUTLASS): a narrow
  weight of few tiles streams at CTAs × cta_gbps, not at the HBM fraction (`_cta_stream_share`).
- **quant**: `quant_atomic_ns` per row of a dynamic per-tensor quantization (one block per row,
  ending in an atomic max on the one scale; `QuantShape`); `quant_row_elements`: the elements one
  iteration of a row's block covers, so a row's bytes are those of whole iterations;
  `quant_per_tensor_memory`: those two kernels' bandwidth fraction (else `quant_memory`).
- **attention** (`attention_*`): FlashAttention runs one CTA per (sequence, head, block of
  `attention_block_q` queries); by Graham's list-scheduling bound the kernel takes the total work
  over the SMs plus `attention_tail` × the longest CTA (the last q-block attends all C + S keys,
  or the window). The softmax's vector FLOPs run at the vector rate and add to the tensor-core
  time (FlashAttention-2 does not overlap them), so `attention_compute` is fitted with them in.
  Decode is KV-read bound (`attention_memory`, ~3 TB/s on H100) plus the split-KV combine
  (`attention_memory_latency_us`). Engine sections bound the memory path from below by the
  split-KV CTAs (`attention_tiles.decode_tiles`): FlashAttention-3's dynamic split gives each work
  item (sequence × KV head × q-block) clamp(ceil(n / ceil(1.1·items·n / SMs)), 1,
  `attention_max_splits`) CTAs over its n 128-key blocks (vLLM caps the splits at 32 in CUDA
  graphs), each taking `attention_cta_us` to set up plus its ceil(n / splits) blocks streamed at
  `attention_sm_gbps`; the memory path takes at least their total over the SMs and at least one
  CTA's time (a list schedule's lower bound): what a decode of many short sequences (the set-up)
  or of few long ones (one CTA's streaming rate) costs. `attention_cta_dim_share` of
  the set-up scales with head_dim / 128 (a d = 64 CTA loads and stores half the bytes). A window
  of W keys covers ceil((W − 1) / 128) + 1 blocks once the cache is longer. With
  `attention_fa3_tiles` = 1 (vLLM's FlashAttention-3 on Hopper) the blocks are FA3's own
  (`attention_tiles.FA3_DECODE_BLOCK_N` by head dim, cache dtype and window), a window's blocks
  those FA3 visits and no split above `FA3_MAX_SPLIT_BATCH` sequences; up to it FA3's Split kernel
  leaves an fp32 partial row per (sequence, query head, split) that its combine kernel reads back,
  `attention_combine_ns` each (× dv / 128), and a window shorter than the cache runs the local
  kernel, whose CTAs take `attention_window_cta_us` more. An 8-bit KV cache runs its own kernel
  path: `attention_fp8kv_{compute,memory,latency_us,memory_latency_us,cta_us,cta_dim_share,sm_gbps,
  window_cta_us,combine_ns}` override the bf16 ones.
  Prefill (more than one query per sequence) in a section with `attention_prefill_compute` runs
  the tiled model instead (`backends/attention_tiles.py`): full `attention_prefill_block`-square
  tiles (with `attention_fa3_tiles` = 1 FlashAttention-3's own kBlockM × kBlockN,
  `attention_tiles.FA3_PREFILL_TILES`; PackGQA rows when `attention_prefill_pack_gqa` = 1) at
  `attention_prefill_compute` of the peak, each tile also paying `attention_prefill_score_flops`
  tensor-FLOP equivalents per score (the softmax the MMAs do not hide; plus
  `attention_prefill_serial_flops` in FA3's kernels without intra-warpgroup overlap), the longest
  CTA's tiles weighted by
  `attention_prefill_tail`, plus per call `attention_prefill_latency_us`, per CTA
  `attention_prefill_cta_us` / SMs, per new token and KV head `attention_prefill_kv_ns`
  (× head_dim / 128: the cache append, its own kernel), per new token `attention_prefill_token_ns`
  (the append's thread block per token), per round of the append's resident blocks
  `attention_prefill_append_block_us` (`attention_append.append_rounds`: one block of
  min(KV heads × head_dim, `attention_append_threads`) threads per token, min(`attention_sm_blocks`,
  `attention_sm_threads` / threads) resident per SM) and per new token and query head
  `attention_prefill_q_ns` (× head_dim / 128: an 8-bit cache's static fp8 quantization of the
  query, vLLM's `scaled_fp8_quant` before FlashAttention-3's fp8 kernel). The attention kernel's
  own bytes (Q, the cached K/V, O: the counted bytes less the append read and written) stream at
  `attention_prefill_memory` of HBM. `attention_fp8kv_prefill_*` for an 8-bit KV cache. A window
  runs the local kernel only while it is shorter than the keys (`window_runs`: FA3 drops one that
  covers them, causal tile and all); FA3's local kernel starts each q-block's keys at its window's
  first key (`attention_tiles.window_span_blocks`); a causal prompt of at most 64 packed query rows at
  d = 64 / 128 runs FA3's one-MMA-warpgroup tile (`attention_tiles.fa3_one_wg`).
  Multi-head latent attention (`MLAShape`) in a section with `attention_mla_*` keys: the core at
  `attention_mla_{compute,memory}`, plus per call `attention_mla_latency_us`, per new token
  `attention_mla_token_ns` and per new token and local head `attention_mla_head_token_ns`;
  `attention_mla_prefill_*` for the expanded (prefill) form, `attention_fp8kv_mla_*` for an
  8-bit latent cache; see `_mla_efficiency`. Sparse MLA (DeepSeek sparse attention: the top-k
  the indexer picked, absorbed at every step length, FlashMLA's sparse kernels) reads
  `attention_dsa_*` / `attention_fp8kv_dsa_*` with the same meanings (`attention_dsa_prefill_*`
  for prefill steps) where the section has them; see `_dsa_efficiency`.
  The DSA indexer (`IndexerShape`) in a section with `attention_dsa_indexer_*` keys: its logits at
  `attention_dsa_indexer_compute`, its bytes at `attention_dsa_indexer_memory` with the cached
  keys read at the engine's layout (`attention_dsa_indexer_key_bytes` per token), plus
  `attention_dsa_indexer_latency_us` per call and `attention_dsa_indexer_token_ns` per new token,
  and an eager call's host-side floor `attention_dsa_indexer_call_floor_us`; see
  `_indexer_efficiency`.
  Gated DeltaNet (`DeltaNetShape`) in a section with `attention_gdn_*` keys: one scan CTA per
  (sequence, value head), ceil(B·Hv / SMs) waves. Chunked (prefill): each CTA walks its
  ceil(S / chunk) chunks one after another at `attention_gdn_chunk_compute` of one SM's share of
  the tensor-core peak, plus `attention_gdn_chunk_cta_us` per wave and `attention_gdn_chunk_latency_us`
  per call; the conv's and the scan's I/O (a fused scan's bytes, `DeltaNetShape.fused_bytes`)
  stream at `attention_gdn_chunk_memory` and add to it (separate kernels). Recurrent (decode): the
  state, conv and I/O bytes at `attention_gdn_recurrent_memory`, at least
  `attention_gdn_recurrent_cta_us` per wave, plus `attention_gdn_recurrent_latency_us`; see
  `_gdn_efficiency`.
- **collective**: `<collective>_{latency_us,step_us,ll_bandwidth,simple_us,simple_bandwidth}` and
  `custom_all_reduce_*` are the measured NCCL / custom all-reduce protocols that
  `backends/communication.py` uses instead of the link-peak model (see its docstring).

Every other kind (norm, activation, elementwise, embedding, memory, other) is a streaming kernel:
its own bandwidth fraction and ramp. Kernel constants that are not fitted (tile sizes, the
q-block, the tail factor) are parameters too, so a calibration of another GPU can change them.
The H100 values and where each comes from are in `backends/profiles/h100_sxm.toml`; the fitting
code is `benchmarks/calibration_fit.py`. Nothing here reads measurement files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sympy

from ..errors import InvalidProfileError
from ..sizes import cdiv, smax, smin
from .attention_append import append_rounds
from .attention_tiles import (
    FA3_MAX_SPLIT_BATCH,
    decode_tiles,
    fa3_one_wg,
    fa3_prefill_tile,
    fa3_runs,
    prefill_tiles,
    split_gate,
)
from .counts import PRECISIONS, Counts
from .gemm_tiles import Tile, rule_condition, tile_rules
from .kernels import AttentionShape, DeltaNetShape, GemmShape, IndexerShape, MLAShape, QuantShape
from .kinds import KINDS
from .moe_tiles import MOE_KEYS, moe_efficiency

if TYPE_CHECKING:  # the op registry imports torch: profiles are validated without it
    from .device import DeviceProfile


def op_name(op: Any) -> str:
    from .formulas.registry import op_name as name_of

    return name_of(op)

TENSOR_PRECISIONS = tuple(p for p in PRECISIONS if p != "vector")
GEMM_REFERENCE_K = 8192  # the K of the ceiling GEMM (8192³) that `gemm_compute` is measured at

# key -> (low, high): accepted closed range of the value.
_FRACTION = (1e-6, 1.0)
_NONNEGATIVE = (0.0, float("inf"))
_PER_KIND: dict[str, tuple[float, float]] = {
    "compute": _FRACTION, "vector": _FRACTION, "memory": _FRACTION,
    "memory_latency_us": _NONNEGATIVE, "latency_us": _NONNEGATIVE, "overlap": (0.0, 1.0),
}
_MODEL_KEYS: dict[str, tuple[float, float]] = {
    "gemm_k_overhead": _NONNEGATIVE,
    "gemm_epilogue_overlap": (0.0, 1.0),
    "gemm_wave_quantization": (0.0, 1.0),
    "gemm_tile_m": (1.0, 4096.0),
    "gemm_tile_n": (1.0, 4096.0),
    "gemm_splitk_us": _NONNEGATIVE,
    "gemm_splitk_tile_n": (1.0, 4096.0),
    "gemm_tile_switch": (0.0, 1.0),
    "gemm_sm_gbps": _NONNEGATIVE,
    "gemm_pad_rows": (0.0, 1.0),
    "gemm_cta_gbps": _NONNEGATIVE,
    "gemm_splitk_k": _NONNEGATIVE,
    "gemm_unaligned_floor_us": _NONNEGATIVE,
    "quant_atomic_ns": _NONNEGATIVE,
    "quant_row_elements": (0.0, 65536.0),
    "quant_per_tensor_memory": _FRACTION,
    "attention_block_q": (1.0, 4096.0),
    "attention_tail": (0.0, 4.0),
    "attention_cta_us": _NONNEGATIVE,
    "attention_cta_dim_share": (0.0, 1.0),
    "attention_sm_gbps": _NONNEGATIVE,
    "attention_max_splits": (1.0, 1024.0),
    "attention_fa3_tiles": (0.0, 1.0),
    "attention_window_cta_us": _NONNEGATIVE,
    "attention_combine_ns": _NONNEGATIVE,
    **{f"attention_fp8kv_{name}": bounds for name, bounds in (
        ("compute", _FRACTION), ("memory", _FRACTION), ("latency_us", _NONNEGATIVE),
        ("memory_latency_us", _NONNEGATIVE), ("cta_us", _NONNEGATIVE), ("cta_dim_share", (0.0, 1.0)),
        ("sm_gbps", _NONNEGATIVE), ("window_cta_us", _NONNEGATIVE), ("combine_ns", _NONNEGATIVE))},
    # the tiled prefill model (engine sections): see attention_efficiency
    "attention_prefill_block": (16.0, 512.0),
    "attention_prefill_pack_gqa": (0.0, 1.0),
    "attention_append_threads": (0.0, 4096.0),
    "attention_sm_threads": (1.0, 65536.0),
    "attention_sm_blocks": (1.0, 1024.0),
    **{f"attention{kv}_prefill_{name}": bounds for kv in ("", "_fp8kv") for name, bounds in (
        ("compute", _FRACTION), ("latency_us", _NONNEGATIVE), ("cta_us", _NONNEGATIVE), ("tail", (0.0, 4.0)),
        ("kv_ns", _NONNEGATIVE), ("q_ns", _NONNEGATIVE), ("memory", _FRACTION),
        ("score_flops", (0.0, 4096.0)), ("token_ns", _NONNEGATIVE), ("serial_flops", (0.0, 4096.0)), ("window_cta_us", _NONNEGATIVE),
        ("append_block_us", _NONNEGATIVE))},
    # multi-head latent attention (engine sections): see _mla_efficiency
    **{f"attention{kv}_mla_{name}": bounds for kv in ("", "_fp8kv") for name, bounds in (
        ("compute", _FRACTION), ("memory", _FRACTION), ("latency_us", _NONNEGATIVE), ("token_ns", _NONNEGATIVE),
        ("head_token_ns", _NONNEGATIVE), ("prefill_compute", _FRACTION), ("prefill_latency_us", _NONNEGATIVE),
        ("prefill_token_ns", _NONNEGATIVE), ("prefill_head_token_ns", _NONNEGATIVE))},
    # sparse MLA (DeepSeek sparse attention, engine sections): see _mla_efficiency
    **{f"attention{kv}_dsa_{name}": bounds for kv in ("", "_fp8kv") for name, bounds in (
        ("compute", _FRACTION), ("memory", _FRACTION), ("latency_us", _NONNEGATIVE), ("token_ns", _NONNEGATIVE),
        ("head_token_ns", _NONNEGATIVE), ("prefill_compute", _FRACTION), ("prefill_latency_us", _NONNEGATIVE),
        ("prefill_token_ns", _NONNEGATIVE), ("prefill_head_token_ns", _NONNEGATIVE), ("head_pad", (0.0, 1024.0)),
        ("pad_min_heads", (0.0, 1024.0)), ("prefill_min_heads", (0.0, 1024.0)))},
    # the DSA indexer (engine sections): see _indexer_efficiency
    **{f"attention_dsa_indexer_{name}": bounds for name, bounds in (
        ("compute", _FRACTION), ("memory", _FRACTION), ("latency_us", _NONNEGATIVE), ("token_ns", _NONNEGATIVE),
        ("key_bytes", (1.0, 4096.0)), ("call_floor_us", _NONNEGATIVE))},
    # gated DeltaNet (engine sections): see _gdn_efficiency
    **{f"attention_gdn_{name}": bounds for name, bounds in (
        ("chunk_compute", _FRACTION), ("chunk_cta_us", _NONNEGATIVE), ("chunk_latency_us", _NONNEGATIVE),
        ("chunk_memory", _FRACTION), ("recurrent_memory", _FRACTION), ("recurrent_cta_us", _NONNEGATIVE),
        ("recurrent_latency_us", _NONNEGATIVE))},
}
# GEMM kernel variants an engine section may calibrate separately (vLLM runs cuBLAS for bf16,
# CUTLASS scaled-mm for per-tensor fp8, DeepGEMM / CUTLASS block-scaled kernels for fp8_block):
# gemm_<variant>_<parameter> overrides gemm_<parameter> for GEMMs of that variant.
GEMM_VARIANTS = ("bf16", "fp16", "fp32", "fp8", "fp8_block", "int8", "w8a8_int8", "nvfp4", "mxfp4", "w4a8")
_GEMM_VARIANT_PARAMS: dict[str, tuple[float, float]] = {
    "compute": _FRACTION, "memory": _FRACTION, "latency_us": _NONNEGATIVE, "memory_latency_us": _NONNEGATIVE,
    "overlap": (0.0, 1.0), "k_overhead": _NONNEGATIVE, "wave_quantization": (0.0, 1.0), "tile_m": (1.0, 4096.0),
    "tile_n": (1.0, 4096.0), "splitk_us": _NONNEGATIVE, "splitk_tile_n": (1.0, 4096.0), "tile_switch": (0.0, 1.0),
    "sm_gbps": _NONNEGATIVE, "call_floor_us": _NONNEGATIVE, "pad_rows": (0.0, 1.0), "cta_gbps": _NONNEGATIVE,
    "splitk_k": _NONNEGATIVE, "unaligned_floor_us": _NONNEGATIVE, "epilogue_overlap": (0.0, 1.0)}
_GEMM_VARIANT_KEYS = {f"gemm_{v}_{p}": b for v in GEMM_VARIANTS for p, b in _GEMM_VARIANT_PARAMS.items()}
_LEGACY = {"gemm": _FRACTION, "vector": _FRACTION, "memory": _FRACTION}
# measured collective protocols (backends/communication.py): <collective>_<parameter>
_COMM_PARAMS: dict[str, tuple[float, float]] = {
    "latency_us": _NONNEGATIVE, "step_us": _NONNEGATIVE, "ll_bandwidth": _FRACTION, "simple_us": _NONNEGATIVE,
    "simple_bandwidth": _FRACTION}
_COMM_KEYS: dict[str, tuple[float, float]] = {
    **{f"{c}_{p}": bounds for c in ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "custom_all_reduce")
       for p, bounds in _COMM_PARAMS.items()},
    "custom_all_reduce_max_mib": _NONNEGATIVE,
    "all_to_all_self_share": (0.0, 1.0),
}
EFFICIENCY_KEYS: dict[str, tuple[float, float]] = {
    **_LEGACY,
    **{f"{kind}_{name}": bounds for kind in KINDS for name, bounds in _PER_KIND.items()},
    **{f"{kind}_compute_{p}": _FRACTION for kind in KINDS for p in TENSOR_PRECISIONS},
    **_MODEL_KEYS,
    **_COMM_KEYS,
    **_GEMM_VARIANT_KEYS,
    **MOE_KEYS,  # the fused-MoE kernel model's per-variant keys (backends/moe_tiles.py)
}
MODEL_DEFAULTS = {"gemm_k_overhead": 0.0, "gemm_epilogue_overlap": 0.0, "gemm_wave_quantization": 0.0,
                  "gemm_tile_m": 128,
                  "gemm_tile_n": 256, "gemm_splitk_us": 0.0, "gemm_splitk_tile_n": 64, "gemm_tile_switch": 0,
                  "gemm_sm_gbps": 0.0, "gemm_pad_rows": 0, "gemm_cta_gbps": 0.0, "gemm_splitk_k": 0.0,
                  "gemm_unaligned_floor_us": 0.0,
                  "attention_block_q": 128, "attention_tail": 0.0, "attention_max_splits": 32}
# DeepGEMM's TMA needs 16-byte aligned rows of the fp32 per-token scales (get_tma_aligned_size,
# kNumTMAAlignmentBytes = 16): an M that is not a multiple of 16 / 4 rows makes the launcher re-lay
# the scales out before the kernel (`gemm_<variant>_unaligned_floor_us`).
TMA_ALIGN_ROWS = 16 // 4
KV_SPLIT_BLOCK = 128  # keys per split-KV block of a decode kernel (FlashAttention-3's n-block at d <= 128)


def validate_efficiency(table: Mapping[str, Any], path: str = "<profile>") -> None:
    """Reject unknown keys and values outside their range, naming the key and what is accepted."""
    for key, value in table.items():
        if key not in EFFICIENCY_KEYS:
            close = sorted(k for k in EFFICIENCY_KEYS if k.split("_")[0] == key.split("_")[0])[:12]
            raise InvalidProfileError(
                f"{path}: unknown key {key!r} in [efficiency]; accepted: gemm, vector, memory, "
                f"<kind>_{{{', '.join(_PER_KIND)}}}, <kind>_compute_<precision>, {', '.join(_MODEL_KEYS)}"
                + (f" (e.g. {', '.join(close)})" if close else ""))
        low, high = EFFICIENCY_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise InvalidProfileError(f"{path}: [efficiency] {key} must be a number in [{low:g}, {high:g}], got {value!r}")


@dataclass(frozen=True)
class Efficiency:
    """What the roofline needs besides counts and peaks (values may be sympy expressions)."""

    compute: Any = 1.0  # fraction of the tensor-core peak, for precisions without their own entry
    vector: Any = 1.0  # fraction of the vector peak
    memory: Any = 1.0  # fraction of the memory bandwidth
    by_precision: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    memory_latency_s: Any = 0  # added to the memory path: the bandwidth ramp of a small transfer
    latency_s: Any = 0  # added once: fixed kernel latency beyond the launch gap
    overlap: Any = 0  # share of min(compute, memory) that does not overlap the larger one
    call_floor_s: Any = 0  # eager launches only: the call takes at least this (host-side launcher work)

    def compute_for(self, precision: str) -> Any:
        if precision == "vector":
            return self.vector
        return self.by_precision.get(precision, self.compute)

    def with_compute(self, change: Callable[[Any], Any]) -> Efficiency:
        """The same efficiency with `change` applied to the tensor-core fraction and to every
        precision's own (a shape model's tile, wave or padding factor)."""
        return replace(self, compute=change(self.compute),
                       by_precision=MappingProxyType({p: change(v) for p, v in self.by_precision.items()}))


def base_efficiency(kind: str, profile: DeviceProfile) -> Efficiency:
    """The per-kind table values with their fallbacks (no shape dependence)."""
    table = profile.efficiency
    compute = table.get(f"{kind}_compute", table.get("gemm", 1.0))
    by_precision = {p: table[f"{kind}_compute_{p}"] for p in TENSOR_PRECISIONS if f"{kind}_compute_{p}" in table}
    return Efficiency(
        compute=compute,
        vector=table.get(f"{kind}_vector", table.get("vector", 1.0)),
        memory=table.get(f"{kind}_memory", table.get("memory", 1.0)),
        by_precision=MappingProxyType(by_precision),
        memory_latency_s=table.get(f"{kind}_memory_latency_us", 0.0) * 1e-6,
        latency_s=table.get(f"{kind}_latency_us", 0.0) * 1e-6,
        overlap=table.get(f"{kind}_overlap", 0.0),
    )


def param(profile: DeviceProfile, key: str) -> Any:
    return profile.efficiency.get(key, MODEL_DEFAULTS[key])


# ---- GEMM ----------------------------------------------------------------------------------------
GemmDims = GemmShape  # the (batch, M, N, K) the GEMM rules return with their counts (backends/kernels.py)


def gemm_variant(counts: Counts, shape: GemmShape) -> str:
    """The GEMM kernel variant: the shape's (a quant_linear scheme), else the precision of its FLOPs."""
    return shape.variant or next((p for p in counts.flops if p != "vector"), "bf16")


def _variant_base(base: Efficiency, counts: Counts, table: Mapping[str, Any], variant: str) -> Efficiency:
    """`base` with the variant's own compute / memory / latency / overlap where the section has them."""
    def get(name: str, default: Any) -> Any:
        return table.get(f"gemm_{variant}_{name}", default)

    compute = get("compute", None)
    by_precision = dict(base.by_precision)
    if compute is not None:
        for precision in counts.flops:
            if precision != "vector":
                by_precision[precision] = compute
    return replace(base, compute=base.compute if compute is None else compute,
                   by_precision=MappingProxyType(by_precision), memory=get("memory", base.memory),
                   latency_s=get("latency_us", None) * 1e-6 if f"gemm_{variant}_latency_us" in table else base.latency_s,
                   memory_latency_s=(get("memory_latency_us", 0.0) * 1e-6 if f"gemm_{variant}_memory_latency_us" in table
                                     else base.memory_latency_s),
                   overlap=get("overlap", base.overlap), call_floor_s=get("call_floor_us", 0.0) * 1e-6)


ELEMENT_BYTES = {"fp8": 1, "int8": 1, "fp4": 0.5}  # operand bytes per element by tensor-core precision (else 2)


def gemm_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    dims = counts.kernel
    if not isinstance(dims, GemmShape):
        raise TypeError(f"a gemm-kind op must return its GemmShape with its counts (Counts.kernel), got {dims!r}")
    variant = gemm_variant(counts, dims)
    table = profile.efficiency
    base = _variant_base(base, counts, table, variant)

    def param(_: DeviceProfile, key: str) -> Any:  # the variant's value, else the kind's, else the default
        return table.get(key.replace("gemm_", f"gemm_{variant}_", 1), table.get(key, MODEL_DEFAULTS[key]))

    sms = profile.compute_units
    k0 = param(profile, "gemm_k_overhead")
    k_factor = _k_factor(k0, dims.k, param(profile, "gemm_epilogue_overlap")) if k0 else 1
    q, sm_gbps = param(profile, "gemm_wave_quantization"), param(profile, "gemm_sm_gbps")
    precision = next((p for p in counts.flops if p != "vector"), "bf16")

    pad = param(profile, "gemm_pad_rows")

    def tiled(tile: Tile, padded: bool = False) -> Any:
        """Wave quantization over the CTAs (whole clusters) and, with `gemm_sm_gbps`, the per-SM load
        limit of a tile whose operands arrive slower than its MMAs consume them (small swap-AB
        tiles); `padded` (the tile switch with `gemm_pad_rows`): the share of the rows each CTA's
        MMA covers (`Tile.cta_m`) that M fills."""
        wave = dims.m / (cdiv(dims.m, tile.cta_m) * tile.cta_m) if padded else 1
        if q:
            tiles = dims.batch * tile.ctas(dims.m, dims.n)
            wave = wave * tiles / (tiles + q * (cdiv(tiles, sms) * sms - tiles))
        if not sm_gbps:
            return wave
        # FLOPs per operand byte of the MMA tile (a 2-SM pair's too: each CTA loads half of each side)
        intensity = 2 * tile.m * tile.n / ((tile.m + tile.n) * ELEMENT_BYTES.get(precision, 2))
        per_sm = profile.rate(precision)[0] * base.compute_for(precision) / sms
        return wave * min(1.0, sm_gbps * 1e9 * intensity / per_sm)

    if param(profile, "gemm_tile_switch"):
        rules = tile_rules(profile.architecture)
        choices = [(tiled(r.tile, bool(pad)), rule_condition(r, dims.m, dims.n, dims.k)) for r in rules]
        concrete = [value for value, condition in choices if condition is True]
        wave = concrete[0] if concrete else sympy.Piecewise(*[(v, c) for v, c in choices if c is not False])
    else:
        wave = tiled(Tile(int(param(profile, "gemm_tile_m")), int(param(profile, "gemm_tile_n"))))
    scale = k_factor * wave
    latency = base.latency_s
    splitk = param(profile, "gemm_splitk_us")
    tile_m, splitk_n = int(param(profile, "gemm_tile_m")), int(param(profile, "gemm_splitk_tile_n"))
    tiles = dims.batch * cdiv(dims.m, tile_m) * cdiv(dims.n, splitk_n)
    if splitk:
        latency = latency + splitk * 1e-6 * smax(0, 1 - tiles / sms)
    memory = base.memory
    cta_gbps = param(profile, "gemm_cta_gbps")
    if cta_gbps and counts.bytes:
        memory = memory * _cta_stream_share(counts, dims, profile, base.memory, tiles, tile_m + splitk_n,
                                            ELEMENT_BYTES.get(precision, 2), cta_gbps, param)
    floor = base.call_floor_s
    unaligned = param(profile, "gemm_unaligned_floor_us")
    if unaligned:
        floor = floor + unaligned * 1e-6 * smin(1, sympy.Mod(dims.m, TMA_ALIGN_ROWS) if not isinstance(dims.m, int)
                                                 else dims.m % TMA_ALIGN_ROWS)
    return replace(base.with_compute(lambda c: c * scale), latency_s=latency, memory=memory, call_floor_s=floor)


def _k_factor(k0: Any, k: Any, overlap: Any) -> Any:
    """The compute-fraction scale of a tile's K loop with its fixed per-tile work worth `k0` steps
    of K, relative to the ceiling's K = 8192: a tile takes K + k0 - overlap x min(K, k0) steps.
    `overlap` (`gemm_<variant>_epilogue_overlap`) is the share of the shorter of the two that runs
    under the other: a persistent kernel whose accumulators are double-buffered (CUTLASS sm100:
    two accumulator stages in tensor memory) stores one tile's output while its MMAs run the next
    tile's K loop, so a tile costs max(K, k0) at overlap 1 and K + k0 at 0."""
    if not overlap:
        return (1 + k0 / GEMM_REFERENCE_K) / (1 + k0 / k)

    def steps(kk: Any) -> Any:
        return kk + k0 - overlap * smin(kk, k0)
    return steps(GEMM_REFERENCE_K) / GEMM_REFERENCE_K * k / steps(k)


def _cta_stream_share(counts: Counts, dims: GemmShape, profile: DeviceProfile, memory: Any, tiles: Any,
                      step_elements: int, element_bytes: float, cta_gbps: float,
                      param: Callable[[DeviceProfile, str], Any]) -> Any:
    """The share of the HBM streaming rate a small-M GEMM reaches when its CTAs, not HBM, limit it.

    The small-M kernels run one CTA per output tile (`gemm_tile_m` x `gemm_splitk_tile_n`) and each
    CTA walks its K range reading (tile rows + tile columns) operand elements per step at no more
    than `gemm_<variant>_cta_gbps`. cuBLAS splits K into ceil(K / `gemm_splitk_k`) slices per tile
    (one CTA each), so a narrow weight (few tiles) of short K streams at CTAs x cta_gbps, not at the
    HBM rate, and its time grows with K up to where the split starts. Time of that path:
    tiles x K x step bytes / (min(CTAs, SMs) x cta_gbps); applied as a lower bandwidth fraction. Only
    while the tiles cannot fill the SMs (the regime of those kernels; the split-K latency term's):
    a GEMM of more tiles runs the large-tile kernels, whose deep pipelines are not held to it."""
    ctas = tiles
    splitk_k = param(profile, "gemm_splitk_k")
    if splitk_k:
        ctas = tiles * cdiv(dims.k, int(splitk_k))
    sms = profile.compute_units
    small = smin(1, smax(0, sms - tiles))  # 1 while the tiles cannot fill the SMs (the small-M kernels), else 0
    per_cta = small * tiles * dims.k * step_elements * element_bytes / (smin(ctas, sms) * cta_gbps * 1e9)
    streaming = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * memory)
    return streaming / smax(streaming, per_cta)


# ---- quantization --------------------------------------------------------------------------------
def quant_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """A dynamic per-tensor scale runs two kernels of one block per row (vLLM's
    `dynamic_scaled_fp8_quant`: grid = rows, 256 threads): each block reduces its row's absmax and
    ends in one atomic max on the one scale, `quant_atomic_ns` per row on top of the streaming time.
    With `quant_row_elements` (W), a block walks its row of K elements in whole iterations of W
    (256 threads x one 16-byte vector of 8 16-bit elements: 2,048), so the row costs the bytes of
    ceil(K / W) x W: a 32-wide row as much as a 2,048-wide one, a 2,049-wide one as two. These two
    kernels stream at `quant_per_tensor_memory` of HBM where the section has it (else `quant_memory`,
    which the one-pass per-token / per-group kernels use)."""
    shape = counts.kernel
    if not isinstance(shape, QuantShape):
        return base
    table = profile.efficiency
    atomic_ns, walk = table.get("quant_atomic_ns", 0.0), int(table.get("quant_row_elements", 0))
    latency = base.latency_s + atomic_ns * 1e-9 * shape.amax_atomics if atomic_ns else base.latency_s
    memory = table.get("quant_per_tensor_memory", base.memory) if shape.row_walk else base.memory
    if walk and shape.row_walk:
        memory = memory * shape.row_walk / (cdiv(shape.row_walk, walk) * walk)
    return replace(base, latency_s=latency, memory=memory)


# ---- attention ---------------------------------------------------------------------------------
def _kv_key(shape: AttentionShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_<name> for a kernel reading an 8-bit KV cache when the section has it, else
    attention_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_{name}" in table:
        return table[f"attention_fp8kv_{name}"]
    return table.get(f"attention_{name}", default)


def _kv_variant(base: Efficiency, shape: AttentionShape, table: Mapping[str, Any]) -> Efficiency:
    """An 8-bit KV cache runs a different kernel path (dequantizing K/V in the main loop): its own
    compute / memory fractions and latencies where the section calibrates them."""
    if shape.kv_itemsize != 1 or not any(k.startswith("attention_fp8kv_") for k in table):
        return base
    compute = _kv_key(shape, table, "compute", base.compute)
    return replace(base, compute=compute, memory=_kv_key(shape, table, "memory", base.memory),
                   by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                   latency_s=_kv_key(shape, table, "latency_us", base.latency_s * 1e6) * 1e-6,
                   memory_latency_s=_kv_key(shape, table, "memory_latency_us", base.memory_latency_s * 1e6) * 1e-6)


def attention_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """FlashAttention over (B, H, S, D) queries (`AttentionShape`); other attention-kind kernels
    (MLA on the latent, gated DeltaNet, the DSA indexer) return no shape and keep the kind's base.

    The Graham tail of the longest CTA (`attention_tail`) and, where the section has it, the
    minimum time of a CTA (`attention_cta_us`): W work items (one per sequence, KV head and
    q-block; GQA heads share a KV head's item) on the SMs run at least ceil(W / SMs) of them one
    after another, so the memory path takes at least that long (applied as a lower bandwidth
    fraction)."""
    shape = counts.kernel
    if isinstance(shape, MLAShape):
        return _mla_efficiency(base, shape, profile.efficiency)
    if isinstance(shape, DeltaNetShape):
        return _gdn_efficiency(base, counts, shape, profile)
    if isinstance(shape, IndexerShape):
        return _indexer_efficiency(base, counts, shape, profile)
    if not isinstance(shape, AttentionShape):
        return base
    base = _kv_variant(base, shape, profile.efficiency)
    if "attention_prefill_compute" in profile.efficiency:
        decode = _flash_efficiency(base, counts, shape, profile)
        prefill = smin(1, shape.q_len - 1)  # 0 for one query per sequence (the decode kernel), else 1
        if isinstance(prefill, int) and prefill == 0:
            return decode
        tiled = _prefill_efficiency(base, counts, shape, profile)
        if isinstance(prefill, int):
            return tiled
        return _blend(decode, tiled, prefill)
    return _flash_efficiency(base, counts, shape, profile)


def _mla_key(shape: MLAShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_mla_<name> for an 8-bit latent cache when the section has it, else attention_mla_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_mla_{name}" in table:
        return table[f"attention_fp8kv_mla_{name}"]
    return table.get(f"attention_mla_{name}", default)


def _dsa_key(shape: MLAShape, table: Mapping[str, Any], name: str, default: Any) -> Any:
    """attention_fp8kv_dsa_<name> for an 8-bit latent cache when the section has it, else attention_dsa_<name>."""
    if shape.kv_itemsize == 1 and f"attention_fp8kv_dsa_{name}" in table:
        return table[f"attention_fp8kv_dsa_{name}"]
    return table.get(f"attention_dsa_{name}", default)


def _dsa_efficiency(base: Efficiency, shape: MLAShape, table: Mapping[str, Any]) -> Efficiency:
    """Sparse MLA (DeepSeek sparse attention over the indexer's top-k, absorbed at every step length)
    as an engine runs it, in a section with `attention_dsa_*` keys: the core at
    `attention_dsa_{compute,memory}`, plus per call `attention_dsa_latency_us`, per new token
    `attention_dsa_token_ns` and per new token and local head `attention_dsa_head_token_ns` (the
    absorb GEMMs and the kernel's walk over the top-k slots: FlashMLA's fp8 sparse decode visits
    every slot, filled or not). A prefill step (more tokens per sequence than a decode) has its own
    `attention_dsa_prefill_{compute,latency_us,token_ns,head_token_ns}` (FlashMLA's sparse prefill
    kernel; with an 8-bit cache vLLM first gathers and dequantizes the top-k latents), each
    falling back to the decode value; `attention_fp8kv_dsa_*` override them for an 8-bit latent
    cache. A symbolic step length blends the two field by field.

    Kernel constraints the engine works around (vLLM's FlashMLA sparse backend): the kernels take
    whole tiles of query heads, so the local heads are padded up to a multiple of
    `attention_dsa_head_pad` (64 on Hopper, 128 on Blackwell for the bf16 kernel; the fp8 decode
    kernel takes 64 or 128) from `attention_dsa_pad_min_heads` local heads on (below it another
    backend without padding runs: FlashInfer's sparse MLA on Blackwell): the core runs at
    heads / padded of its fraction and the per-head cost counts the padded heads. With an 8-bit
    cache, a prefill with fewer than `attention_fp8kv_dsa_prefill_min_heads` local heads runs the
    fp8 decode kernel over all its tokens (vLLM's mixed-batch mode, MIN_HEADS_FOR_BF16_PREFILL),
    i.e. the decode values."""
    heads = shape.heads
    pad = _dsa_key(shape, table, "head_pad", 0)
    padded = cdiv(heads, int(pad)) * int(pad) if pad and heads >= _dsa_key(shape, table, "pad_min_heads", 0) else heads

    def form(prefix: str) -> Efficiency:
        def get(name: str, default: Any) -> Any:
            return _dsa_key(shape, table, f"{prefix}{name}", _dsa_key(shape, table, name, default))

        compute = get("compute", base.compute) * heads / padded
        latency_us = (get("latency_us", base.latency_s * 1e6) + get("token_ns", 0.0) * 1e-3 * shape.tokens
                      + get("head_token_ns", 0.0) * 1e-3 * shape.tokens * padded)
        return replace(base, compute=compute, memory=_dsa_key(shape, table, "memory", base.memory),
                       by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                       latency_s=latency_us * 1e-6)

    decode = form("")
    if shape.short_step in (True, sympy.true):
        return decode
    prefill = decode if heads < _dsa_key(shape, table, "prefill_min_heads", 0) else form("prefill_")
    if shape.short_step in (False, sympy.false):
        return prefill
    return _blend(decode, prefill, sympy.Piecewise((0, shape.short_step), (1, True)))


def _indexer_efficiency(base: Efficiency, counts: Counts, shape: IndexerShape, profile: DeviceProfile) -> Efficiency:
    """The DeepSeek sparse-attention indexer as an engine runs it (sections with
    `attention_dsa_indexer_*` keys; others keep the attention base): the logits GEMM at
    `attention_dsa_indexer_compute` of the peak; the bytes (queries, head weights, cached keys,
    logits written and read back by the top-k) at `attention_dsa_indexer_memory`, the cached keys
    counted at the engine's cache layout, `attention_dsa_indexer_key_bytes` per token (vLLM: 128
    fp8 values and one fp32 scale), instead of the traced cache dtype's (applied as the memory
    fraction of the counted bytes); plus `attention_dsa_indexer_latency_us` per call (the chain:
    RoPE, quantization, cache insert, logits, top-k) and `attention_dsa_indexer_token_ns` per new
    token (one top-k row each). `attention_dsa_indexer_call_floor_us`: an eagerly launched call
    takes at least this long (the host-side work of the indexer's launch path); a CUDA-graph
    replay does not pay it."""
    table = profile.efficiency
    if not any(k.startswith("attention_dsa_indexer_") for k in table):
        return base
    compute = table.get("attention_dsa_indexer_compute", base.compute)
    memory = table.get("attention_dsa_indexer_memory", base.memory)
    key_bytes = table.get("attention_dsa_indexer_key_bytes")
    if key_bytes and counts.bytes:
        engine_bytes = counts.bytes - shape.key_bytes + shape.cached_tokens * key_bytes
        memory = memory * counts.bytes / engine_bytes
    latency_us = (table.get("attention_dsa_indexer_latency_us", base.latency_s * 1e6)
                  + table.get("attention_dsa_indexer_token_ns", 0.0) * 1e-3 * shape.tokens)
    return replace(base, compute=compute, by_precision=MappingProxyType({p: compute for p in TENSOR_PRECISIONS}),
                   memory=memory, memory_latency_s=0, latency_s=latency_us * 1e-6,
                   call_floor_s=table.get("attention_dsa_indexer_call_floor_us", 0.0) * 1e-6)


def _mla_efficiency(base: Efficiency, shape: MLAShape, table: Mapping[str, Any]) -> Efficiency:
    """Multi-head latent attention as an engine runs it (sections with `attention_mla_*` keys; others
    keep the attention base). The absorbed form (the decode kernel over the latent) at
    `attention_mla_{compute,memory}` plus a fixed GPU cost per call (`attention_mla_latency_us`: the
    chain of small kernels around the core inside a CUDA graph), a cost per new token
    (`attention_mla_token_ns`: RoPE, the latent cache append, the query's copies and quantization)
    and per new token and local head (`attention_mla_head_token_ns`: the per-head batched GEMMs
    q_nope·W_UK / ·W_UV and the transposes around them). The expanded form (prefill: kv_b
    up-projection, key assembly, multi-head attention) has its own `attention_mla_prefill_{compute,
    latency_us,token_ns,head_token_ns}` (the per-head cost there: the up-projected keys and values
    written and read). `attention_fp8kv_mla_*` override them for an 8-bit latent cache. A symbolic
    form (a step of symbolic length) blends the two field by field."""
    if not any(k.startswith(("attention_mla_", "attention_fp8kv_mla_")) for k in table):
        return base
    if shape.sparse and shape.absorbed is True and any(
            k.startswith(("attention_dsa_", "attention_fp8kv_dsa_")) and not k.startswith("attention_dsa_indexer_")
            for k in table):
        return _dsa_efficiency(base, shape, table)

    def form(prefix: str, default_compute: Any) -> Efficiency:
        compute = _mla_key(shape, table, f"{prefix}compute", default_compute)
        latency_us = (_mla_key(shape, table, f"{prefix}latency_us", base.latency_s * 1e6)
                      + _mla_key(shape, table, f"{prefix}token_ns", 0.0) * 1e-3 * shape.tokens
                      + _mla_key(shape, table, f"{prefix}head_token_ns", 0.0) * 1e-3 * shape.tokens * shape.heads)
        return replace(base, compute=compute, memory=_mla_key(shape, table, "memory", base.memory),
                       by_precision=MappingProxyType({p: compute for p in base.by_precision}),
                       latency_s=latency_us * 1e-6)

    absorbed = form("", base.compute)
    if shape.absorbed in (True, sympy.true):
        return absorbed
    expanded = form("prefill_", absorbed.compute)
    if shape.absorbed in (False, sympy.false):
        return expanded
    return _blend(absorbed, expanded, sympy.Piecewise((0, shape.absorbed), (1, True)))


def _gdn_efficiency(base: Efficiency, counts: Counts, shape: DeltaNetShape, profile: DeviceProfile) -> Efficiency:
    """Gated DeltaNet as an engine runs it (sections with `attention_gdn_*` keys; others keep the
    attention base). The scan runs one CTA per (sequence, value head): W = B·Hv work items in
    ceil(W / SMs) waves.

    Chunked (prefill): a CTA walks its ceil(S / chunk) chunks one after another, each at
    `attention_gdn_chunk_compute` of one SM's share of the tensor-core peak, so the scan takes
    waves x chunks x chunk_flops x SMs / (peak x fraction) — applied as the compute fraction
    fraction x W / (waves x SMs), the share of the waves' SM slots that hold a CTA — plus
    `attention_gdn_chunk_cta_us` per wave (state load and store) and `attention_gdn_chunk_latency_us`
    per call. The conv and the scan's I/O stream `DeltaNetShape.fused_bytes` at
    `attention_gdn_chunk_memory` of HBM (applied as the memory fraction of the counted bytes, which
    are the unfused kernels') and add to the scan (overlap 1: the conv is its own kernel).
    Recurrent (decode): memory-bound on the state, the conv and the I/O (the counted bytes) at
    `attention_gdn_recurrent_memory`, at least `attention_gdn_recurrent_cta_us` per wave, plus
    `attention_gdn_recurrent_latency_us`. A symbolic form blends the two field by field."""
    table = profile.efficiency
    if not any(k.startswith("attention_gdn_") for k in table):
        return base
    sms = profile.compute_units
    items = shape.sequences * shape.v_heads
    waves = cdiv(items, sms)

    def chunked() -> Efficiency:
        compute = table.get("attention_gdn_chunk_compute", base.compute) * items / (waves * sms)
        memory = table.get("attention_gdn_chunk_memory", base.memory) * counts.bytes / shape.fused_bytes
        latency_us = table.get("attention_gdn_chunk_latency_us", 0.0) + table.get("attention_gdn_chunk_cta_us", 0.0) * waves
        return replace(base, compute=compute, by_precision=MappingProxyType({p: compute for p in TENSOR_PRECISIONS}),
                       memory=memory, memory_latency_s=0, latency_s=latency_us * 1e-6, overlap=1)

    def recurrent() -> Efficiency:
        memory = table.get("attention_gdn_recurrent_memory", base.memory)
        cta_us = table.get("attention_gdn_recurrent_cta_us", 0.0)
        if cta_us and counts.bytes:
            streaming = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * memory)
            memory = memory * streaming / smax(streaming, cta_us * 1e-6 * waves)
        return replace(base, memory=memory, memory_latency_s=0, overlap=0,
                       latency_s=table.get("attention_gdn_recurrent_latency_us", 0.0) * 1e-6)

    if shape.recurrent in (True, sympy.true):
        return recurrent()
    if shape.recurrent in (False, sympy.false):
        return chunked()
    return _blend(recurrent(), chunked(), sympy.Piecewise((0, shape.recurrent), (1, True)))


def _blend(decode: Efficiency, prefill: Efficiency, weight: Any) -> Efficiency:
    """decode · (1 - weight) + prefill · weight, field by field (weight 0 or 1 at every integer size)."""
    def mix(a: Any, b: Any) -> Any:
        return a * (1 - weight) + b * weight

    return replace(decode, compute=mix(decode.compute, prefill.compute), memory=mix(decode.memory, prefill.memory),
                   latency_s=mix(decode.latency_s, prefill.latency_s),
                   memory_latency_s=mix(decode.memory_latency_s, prefill.memory_latency_s),
                   overlap=decode.overlap if decode.overlap == prefill.overlap else mix(decode.overlap, prefill.overlap),
                   by_precision=MappingProxyType({p: mix(v, prefill.by_precision.get(p, v))
                                                  for p, v in decode.by_precision.items()}))


def _window_cta_us(shape: AttentionShape, table: Mapping[str, Any], name: str) -> Any:
    """The extra time of a CTA of FlashAttention's sliding-window (local) kernel, which runs only while
    the keys outnumber the window (FA3's flash_api.cpp drops a window >= seqlen_k): 0 otherwise."""
    extra = _kv_key(shape, table, name, 0.0)
    if shape.window <= 0 or not extra:
        return 0.0
    return extra * smin(1, smax(0, shape.keys - shape.window))


def window_runs(shape: AttentionShape) -> Any:
    """1 when the sliding-window (local) kernel runs, 0 when it does not (symbolic-safe): FlashAttention
    drops a window that covers every key (FA3's flash_api.cpp: window_size_left >= max_seqlen_k - 1, with
    vLLM's window_size_left = W - 1) and runs its causal kernel, causal tile and all."""
    if shape.window <= 0:
        return 0
    return smin(1, smax(0, shape.keys - shape.window))


def _prefill_efficiency(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The prefill kernel FlashAttention runs for the shape: its local (sliding-window) kernel while the
    window is shorter than the keys, else its causal one over the whole prompt (`window_runs`); the causal
    one on FA3's one-MMA-warpgroup tile for a short prompt (`attention_tiles.fa3_one_wg`)."""
    local = window_runs(shape)
    causal = _causal_kernel(base, counts, replace(shape, window=0), profile)
    if isinstance(local, int):
        return _prefill_kernel(base, counts, shape, profile) if local else causal
    return _blend(causal, _prefill_kernel(base, counts, shape, profile), local)


def _causal_kernel(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The causal kernel, on FA3's one-MMA-warpgroup tile where it runs (symbolic-safe blend)."""
    table = profile.efficiency
    if not (table.get("attention_fa3_tiles", 0) and fa3_runs(shape)):
        return _prefill_kernel(base, counts, shape, profile)
    pack = bool(table.get("attention_prefill_pack_gqa", 0))
    one_wg = fa3_one_wg(shape, pack)
    if isinstance(one_wg, int):
        return _prefill_kernel(base, counts, shape, profile, one_wg=bool(one_wg))
    return _blend(_prefill_kernel(base, counts, shape, profile),
                  _prefill_kernel(base, counts, shape, profile, one_wg=True), one_wg)


def _append_rounds(shape: AttentionShape, table: Mapping[str, Any], sms: int) -> Any:
    """Rounds of the cache append's resident thread blocks (`attention_append.append_rounds`), 0 in a
    section without `attention_append_threads` (vLLM's block cap)."""
    cap = int(table.get("attention_append_threads", 0))
    if not cap:
        return 0
    return append_rounds(shape, sms, cap, int(table.get("attention_sm_threads", 2048)),
                         int(table.get("attention_sm_blocks", 32)))


def _prefill_kernel(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile,
                    one_wg: bool = False) -> Efficiency:
    """The tiled prefill kernel: time = padded tiles (each with its unhidden softmax per score) + tail x
    the longest CTA at the prefill compute fraction, plus latency, a cost per CTA (over the SMs), per
    new token and KV head (the cache append) and per new token and query head (an 8-bit cache's query
    quantization); the kernel's own bytes, without the append's, at the prefill memory fraction. A
    shape with a window runs the local kernel, `one_wg` FA3's one-MMA-warpgroup tile (the caller decides
    whether they run)."""
    table = profile.efficiency
    block = block_n = int(table.get("attention_prefill_block", 128))
    serial = fa3 = False
    if table.get("attention_fa3_tiles", 0) and fa3_runs(shape):  # FA3's own tile for the head dim, dtype, window
        block, block_n, overlap = fa3_prefill_tile(max(shape.head_dim, shape.v_dim), shape.kv_itemsize,
                                                   shape.window > 0, one_wg)
        serial, fa3 = not overlap, True
    # FA3's local kernel starts a q-block's keys at its window's first key (attention_tiles.window_span_blocks)
    tiles = prefill_tiles(shape, block, bool(table.get("attention_prefill_pack_gqa", 0)), block_n, window_from_key=fa3)
    compute = _kv_key(shape, table, "prefill_compute", base.compute)
    tail = _kv_key(shape, table, "prefill_tail", 0.0)
    cta_us = _kv_key(shape, table, "prefill_cta_us", 0.0)
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    sms = profile.compute_units
    # per score of a tile, the softmax work the MMAs do not hide, in tensor-FLOP equivalents
    score_flops = _kv_key(shape, table, "prefill_score_flops", 0.0)
    if serial:  # no intra-warpgroup overlap: the softmax the pipelining would hide runs between the MMAs
        score_flops = score_flops + _kv_key(shape, table, "prefill_serial_flops", 0.0)
    tile_flops = tiles.tile_flops + score_flops * block * block_n
    padded = (tiles.tiles + tail * sms * tiles.longest) * tile_flops
    factor = work / padded
    latency_us = (_kv_key(shape, table, "prefill_latency_us", base.latency_s * 1e6)
                  + cta_us * (tiles.ctas / sms + tail)
                  + _window_cta_us(shape, table, "prefill_window_cta_us") * tiles.ctas / sms
                  + _kv_key(shape, table, "prefill_kv_ns", 0.0) * 1e-3 * shape.batch * shape.q_len * shape.kv_heads
                  * shape.head_dim / 128
                  # the append launches one thread block per new token (vLLM cache_kernels.cu,
                  # reshape_and_cache_flash: grid(num_tokens)), whatever its K/V width
                  + _kv_key(shape, table, "prefill_token_ns", 0.0) * 1e-3 * shape.batch * shape.q_len
                  + _append_rounds(shape, table, sms) * _kv_key(shape, table, "prefill_append_block_us", 0.0)
                  + _kv_key(shape, table, "prefill_q_ns", 0.0) * 1e-3 * shape.batch * shape.q_len * shape.q_heads
                  * shape.head_dim / 128)
    memory = base.memory
    prefill_memory = _kv_key(shape, table, "prefill_memory", 0.0)
    if prefill_memory and counts.bytes:
        # the cache append (new K/V read, written into the cache) is its own kernel, costed by kv_ns:
        # the attention kernel streams the rest (Q, the cached K/V, O) at prefill_memory of HBM
        append = shape.batch * shape.q_len * shape.kv_heads * (shape.head_dim + shape.v_dim) * shape.kv_itemsize
        memory = prefill_memory * counts.bytes / smax(counts.bytes - 2 * append, 1)
    return replace(base, compute=compute * factor, latency_s=latency_us * 1e-6, memory=memory,
                   by_precision=MappingProxyType({p: compute * factor for p in base.by_precision}))


def _flash_efficiency(base: Efficiency, counts: Counts, shape: AttentionShape, profile: DeviceProfile) -> Efficiency:
    """The FlashAttention model of a decode (and, without a tiled prefill section, of a prefill)."""
    tail = param(profile, "attention_tail")
    cta_us = _kv_key(shape, profile.efficiency, "cta_us", 0.0)
    q_len, head_dim, v_dim, keys, window = shape.q_len, shape.head_dim, shape.v_dim, shape.keys, shape.window
    block = int(param(profile, "attention_block_q"))
    sm_gbps = _kv_key(shape, profile.efficiency, "sm_gbps", 0.0)
    if (cta_us or sm_gbps) and counts.bytes:
        # split-KV CTAs (FlashAttention-3's dynamic split, backends/attention_tiles.py), each its set-up
        # (cta_us) plus its key blocks streamed at sm_gbps: the memory path takes at least that long
        sms = profile.compute_units
        fa3 = bool(profile.efficiency.get("attention_fa3_tiles", 0)) and fa3_runs(shape)
        tiles = decode_tiles(shape, block, KV_SPLIT_BLOCK, sms, int(param(profile, "attention_max_splits")), fa3)
        per_cta_us = 0.0
        if cta_us:
            dim_share = _kv_key(shape, profile.efficiency, "cta_dim_share", 0.0)
            per_cta_us = cta_us * (1 - dim_share + dim_share * head_dim / 128) if dim_share else cta_us
        # FA3's local (sliding-window) kernel: its CTAs mask both ends of their key range
        per_cta_us = per_cta_us + _window_cta_us(shape, profile.efficiency, "window_cta_us")
        block_bytes = tiles.block_n * (head_dim + v_dim) * shape.kv_itemsize
        stream_us = tiles.per_cta * block_bytes / (sm_gbps * 1e3) if sm_gbps else 0
        # the CTAs' total time over the SMs, and at least one CTA's (Graham's lower bound of a list schedule)
        floor = smax(1, tiles.items * tiles.splits / sms) * (per_cta_us + stream_us) * 1e-6
        streaming = counts.bytes / (profile.memory_bandwidth_gbps * 1e9 * base.memory)
        base = replace(base, memory=base.memory * streaming / smax(streaming, floor))
        combine_ns = _kv_key(shape, profile.efficiency, "combine_ns", 0.0)
        if fa3 and combine_ns:
            # up to FA3_MAX_SPLIT_BATCH sequences vLLM's CUDA-graph decode runs FA3's Split kernel (num_splits
            # = 32 given): every (sequence, query head) row leaves an fp32 partial output per split, which
            # flash_fwd_combine reads back and reduces into O
            rows = shape.batch * shape.q_heads * q_len * tiles.splits * split_gate(shape.batch, FA3_MAX_SPLIT_BATCH)
            base = replace(base, latency_s=base.latency_s + combine_ns * 1e-9 * rows * v_dim / 128)
    if not tail:
        return base
    rows = smin(q_len, block)
    if window > 0:
        keys = smin(keys, window + rows)
    longest = 2 * (head_dim + v_dim) * rows * keys  # tensor FLOPs of the longest CTA
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    if isinstance(work, int) and work == 0:
        return base
    # time = (W + tail · SMs · L) / R  ==  W / (R · W / (W + tail · SMs · L))
    factor = work / (work + tail * profile.compute_units * longest)
    return base.with_compute(lambda c: c * factor)


ShapeModel = Callable[[Efficiency, Counts, "DeviceProfile"], Efficiency]
SHAPE_MODELS: dict[str, ShapeModel] = {"gemm": gemm_efficiency, "attention": attention_efficiency,
                                     "quant": quant_efficiency, "moe": moe_efficiency}


def efficiency_for(kind: str, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """The efficiency of an op of `kind` from its counts and the kernel shape they carry."""
    base = base_efficiency(kind, profile)
    model = SHAPE_MODELS.get(kind)
    return model(base, counts, profile) if model is not None else base

