"""Efficiency models: how close an op of a given kind and shape gets to the device's peaks.

Owns `efficiency_for(kind, counts, profile) -> Efficiency` (shape models read the kernel shape
the cost rule returned with its counts, `Counts.kernel`; they never re-read op arguments), the parameter table those
models read (the device profile's `[efficiency]` section, `EFFICIENCY_KEYS`) and its validator.
It never produces seconds itself: `backends/roofline.py` turns counts plus an `Efficiency`
into time,

    time = max(compute, memory, comm) + overlap · min(compute, memory) + latency + launch overhead
    compute = Σ_precision FLOPs / (peak · compute fraction)
    memory  = bytes / (bandwidth · memory fraction) + memory latency

Every value may be a sympy expression in B, S, C (Max/Min/ceiling only, no Python `if` on a
size), so a symbolic trace keeps working.

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
  the compute fraction scales by (1 + K0/8192) / (1 + K0/K). Wave quantization: with tiles of
  `gemm_tile_m` × `gemm_tile_n` over `compute_units` SMs, a fraction `gemm_wave_quantization`
  of the idle slots of the last wave is lost (0: stream-K / heuristics hide it; 1: classic
  waves). Small GEMMs stream their weights (`gemm_memory`); when the output tiles
  (`gemm_splitk_tile_n` columns × `gemm_tile_m` rows) cannot fill the SMs, cuBLAS splits K and
  pays up to `gemm_splitk_us` for the extra reduction: latency + splitk_us · max(0, 1 − CTAs/SMs).
- **attention** (`attention_*`): FlashAttention runs one CTA per (sequence, head, block of
  `attention_block_q` queries); by Graham's list-scheduling bound the kernel takes the total work
  over the SMs plus `attention_tail` × the longest CTA (the last q-block attends all C + S keys,
  or the window). The softmax's vector FLOPs run at the vector rate and add to the tensor-core
  time (FlashAttention-2 does not overlap them), so `attention_compute` is fitted with them in.
  Decode is KV-read bound (`attention_memory`, ~3 TB/s on H100) plus the split-KV combine
  (`attention_memory_latency_us`).

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

from ..errors import InvalidProfileError
from ..sizes import cdiv, smax, smin
from .counts import PRECISIONS, Counts
from .kernels import AttentionShape, GemmShape
from .kinds import KINDS

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
    "gemm_wave_quantization": (0.0, 1.0),
    "gemm_tile_m": (1.0, 4096.0),
    "gemm_tile_n": (1.0, 4096.0),
    "gemm_splitk_us": _NONNEGATIVE,
    "gemm_splitk_tile_n": (1.0, 4096.0),
    "attention_block_q": (1.0, 4096.0),
    "attention_tail": (0.0, 4.0),
}
_LEGACY = {"gemm": _FRACTION, "vector": _FRACTION, "memory": _FRACTION}
EFFICIENCY_KEYS: dict[str, tuple[float, float]] = {
    **_LEGACY,
    **{f"{kind}_{name}": bounds for kind in KINDS for name, bounds in _PER_KIND.items()},
    **{f"{kind}_compute_{p}": _FRACTION for kind in KINDS for p in TENSOR_PRECISIONS},
    **_MODEL_KEYS,
}
MODEL_DEFAULTS = {"gemm_k_overhead": 0.0, "gemm_wave_quantization": 0.0, "gemm_tile_m": 128,
                  "gemm_tile_n": 256, "gemm_splitk_us": 0.0, "gemm_splitk_tile_n": 64,
                  "attention_block_q": 128, "attention_tail": 0.0}


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

    def compute_for(self, precision: str) -> Any:
        if precision == "vector":
            return self.vector
        return self.by_precision.get(precision, self.compute)


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


def gemm_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    dims = counts.kernel
    if not isinstance(dims, GemmShape):
        raise TypeError(f"a gemm-kind op must return its GemmShape with its counts (Counts.kernel), got {dims!r}")
    sms = profile.compute_units
    k0 = param(profile, "gemm_k_overhead")
    k_factor = (1 + k0 / GEMM_REFERENCE_K) / (1 + k0 / dims.k) if k0 else 1
    tile_m, tile_n, q = param(profile, "gemm_tile_m"), param(profile, "gemm_tile_n"), param(profile, "gemm_wave_quantization")
    row_tiles = cdiv(dims.m, int(tile_m))
    wave = 1
    if q:
        tiles = dims.batch * row_tiles * cdiv(dims.n, int(tile_n))
        wave = tiles / (tiles + q * (cdiv(tiles, sms) * sms - tiles))
    scale = k_factor * wave
    latency = base.latency_s
    splitk = param(profile, "gemm_splitk_us")
    if splitk:
        ctas = dims.batch * row_tiles * cdiv(dims.n, int(param(profile, "gemm_splitk_tile_n")))
        latency = latency + splitk * 1e-6 * smax(0, 1 - ctas / sms)
    return replace(base, compute=base.compute * scale, latency_s=latency,
                   by_precision=MappingProxyType({p: v * scale for p, v in base.by_precision.items()}))


# ---- attention ---------------------------------------------------------------------------------
def attention_efficiency(base: Efficiency, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """FlashAttention over (B, H, S, D) queries (`AttentionShape`); other attention-kind kernels
    (MLA on the latent, gated DeltaNet, the DSA indexer) return no shape and keep the kind's base."""
    tail = param(profile, "attention_tail")
    shape = counts.kernel
    if not tail or not isinstance(shape, AttentionShape):
        return base
    q_len, head_dim, v_dim, keys, window = shape.q_len, shape.head_dim, shape.v_dim, shape.keys, shape.window
    block = int(param(profile, "attention_block_q"))
    rows = smin(q_len, block)
    if window > 0:
        keys = smin(keys, window + rows)
    longest = 2 * (head_dim + v_dim) * rows * keys  # tensor FLOPs of the longest CTA
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    if isinstance(work, int) and work == 0:
        return base
    # time = (W + tail · SMs · L) / R  ==  W / (R · W / (W + tail · SMs · L))
    factor = work / (work + tail * profile.compute_units * longest)
    return replace(base, compute=base.compute * factor,
                   by_precision=MappingProxyType({p: val * factor for p, val in base.by_precision.items()}))


ShapeModel = Callable[[Efficiency, Counts, "DeviceProfile"], Efficiency]
SHAPE_MODELS: dict[str, ShapeModel] = {"gemm": gemm_efficiency, "attention": attention_efficiency}


def efficiency_for(kind: str, counts: Counts, profile: DeviceProfile) -> Efficiency:
    """The efficiency of an op of `kind` from its counts and the kernel shape they carry."""
    base = base_efficiency(kind, profile)
    model = SHAPE_MODELS.get(kind)
    return model(base, counts, profile) if model is not None else base

