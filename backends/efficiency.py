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

Why the key table and the GEMM / quantization models share a file (~530 lines): the key table
(`EFFICIENCY_KEYS`, bounds, `MODEL_DEFAULTS`), its validator and the shape models that read those
keys change together (a new kernel term is a key, a bound, a default and a model). The attention
models (FlashAttention prefill / decode, MLA, DSA and its indexer, gated DeltaNet) read their keys
from this table but live in `attention_efficiency.py`, reached through `SHAPE_MODELS`; the MoE
model lives in `moe_tiles.py`.

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

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sympy

from ..errors import InvalidProfileError
from ..sizes import cdiv, smax, smin
from .counts import PRECISIONS, Counts
from .gemm_tiles import Tile, rule_condition, tile_rules
from .kernels import GemmShape, QuantShape
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


def uncalibrated_gemm_notes(variants: Iterable[str], efficiency: Mapping[str, Any], engine: str,
                            device: str) -> tuple[str, ...]:
    """For the report: the GEMM variants a step runs (`gemm_variant` of its GEMMs) that the section in
    force has no fit of (`gemm_<variant>_compute`) while it fits others': those GEMMs take the section's
    generic GEMM parameters. Nothing for bf16 (the generic parameters' own variant) or for a section that
    fits no variant at all."""
    fitted = sorted(v for v in GEMM_VARIANTS if f"gemm_{v}_compute" in efficiency)
    if not fitted:
        return ()
    missing = sorted({v for v in variants if v not in ("bf16", *fitted)})
    return tuple(f"engine {engine} on {device}: no {v} GEMM kernel is calibrated (fitted: {', '.join(fitted)}); its "
                 f"{v} GEMMs are costed with the section's generic GEMM parameters" for v in missing)


def gemm_variants(nodes: Iterable[Any]) -> set[str]:
    """The GEMM variants of costed nodes (objects with `kind` and `counts`)."""
    return {gemm_variant(n.counts, n.counts.kernel) for n in nodes
            if n.kind == "gemm" and isinstance(getattr(n.counts, "kernel", None), GemmShape)}


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


def _attention(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """`attention_efficiency.attention_efficiency`, imported at the first call: that module imports
    this one's `Efficiency`, key defaults and `param` (the moe_tiles pattern, the other way round)."""
    from .attention_efficiency import attention_efficiency

    return attention_efficiency(base, counts, profile)


ShapeModel = Callable[[Efficiency, Counts, "DeviceProfile"], Efficiency]
SHAPE_MODELS: dict[str, ShapeModel] = {"gemm": gemm_efficiency, "attention": _attention,
                                     "quant": quant_efficiency, "moe": moe_efficiency}


def efficiency_for(kind: str, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """The efficiency of an op of `kind` from its counts and the kernel shape they carry."""
    base = base_efficiency(kind, profile)
    model = SHAPE_MODELS.get(kind)
    return model(base, counts, profile) if model is not None else base

