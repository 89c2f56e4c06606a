"""The fused-MoE kernel model: which M tile an engine's grouped GEMM runs, and what the padding costs.

Owns the kernel table (`MOE_KERNELS`: the fused-MoE kernel vLLM 0.24 runs per architecture and
expert scheme; `KERNEL_OF_SCHEME`: schemes an engine runs on another variant's kernel), each
kernel's M-tile rule (`tile_rows`), the expected padded rows of a routed MoE layer
(`padded_rows`), the expert dimensions an engine pads the weights to (`PAD_TO`), the parameter
keys of the model (`MOE_KEYS`) and `moe_efficiency`, the shape model of kind `moe`. It reads only
the profile's efficiency section and produces no seconds: `backends/roofline.py` turns the
`Efficiency` into time.

The physics. A fused MoE runs two grouped GEMMs; each expert hit by the step's routing runs its
rows (the (token, expert) pairs it received) in tiles of `tile` rows, and a tile's MMAs cover all
its rows whether the expert filled them or not. With m rows, an expert pays ceil(m / tile) tiles:
at 1,024 tokens, k = 8, E = 256 an expert gets 32 rows of a 64-row tile, half of the tensor-core
work is padding. Rows per expert are random under real routing (binomial around N·q), so the
expected tiles of an expert are P(hit) below half a tile and about m / tile + 1/2 above it
(`expected_tiles`); a table measured with exactly balanced routing has exactly ceil(m / tile).
Skewed routing (`CostKnobs.moe_skew`) spreads the rows unevenly: cold experts pay a whole tile for
a few rows, which is why power-law routing is 1.1-1.5x slower than balanced where experts hold a
few dozen rows. The padding is charged as extra tensor-core FLOPs of the routed GEMMs only (the
router and shared experts in the same op are dense GEMMs without it): the compute fraction is
scaled by FLOPs / (FLOPs + padded rows x row FLOPs).

Which tile (first match wins; r = the average rows per hit expert, M = the step's tokens):
- `triton` (vLLM `fused_moe` on Hopper, bf16 and block fp8): Triton's MMA takes at least 16 rows;
  vLLM's tuned configs (`fused_moe/configs/E=..,N=..,device_name=NVIDIA_H100_80GB_HBM3.json`) grow
  BLOCK_SIZE_M with the batch, and the tables show the tile following the rows per expert: time
  flat until r passes 128 on E = 256 bf16 layers (H100, H 6144: 7.7 ms at r = 128, 10.9 ms at
  192). Modelled as r rounded up to a power of two in [16, 128] (block fp8: [16, 64], the block
  kernels' BLOCK_SIZE_M in `get_default_config`).
- `trtllm` (FlashInfer TRT-LLM fused MoE on Blackwell): `tile_tokens_dim` = r rounded up to a
  power of two, clamped to [8, 64]. NVFP4 (`LOCAL_RULES`): FlashInfer's FP4 launcher, run without an
  autotuned tactic as the tables were, takes the smallest of its candidate tiles
  (`selectDefaultTileN` / `computeSelectedTileN`, csrc/trtllm_fused_moe_kernel_launcher.cu): one
  step of the ladder {8, ..., 256} below the next power of two of T·k / (E / ep), the pairs per
  *local* expert, hit or not, so in [8, 128]. An EP rank that receives every token (the tables' EP
  rows) sizes its tile by pairs that mostly go to other ranks: at EP 256 one local expert with a few
  rows runs 128-row tiles from 16 tokens on. Against the hit-expert rule, refitted (B200 NVFP4, 300
  rows): 14.7 -> 14.0 % fitted on, 16.5 -> 15.9 % held out; the padding penalty a padded row carries
  falls from 1.56 to 0.51 of a filled row's MMAs. A vLLM server autotunes FlashInfer at start-up
  (`kernel_warmup.flashinfer_autotune`) and may pick a wider candidate where it runs faster, so on
  a served step this rule is the fallback's cost, at most the tuned one's among the same candidates.
- `oai_triton` (gpt-oss MXFP4 on Hopper, triton_kernels `matmul_ogs`): block_m = r rounded up to a
  power of two in [16, 128].
- `marlin` (vLLM `fused_marlin_moe`): the smallest of 8, 16, 32, 48, 64 rows with r / block < 0.9,
  else 64.
- `cutlass` (FlashInfer CUTLASS grouped GEMM, per-tensor fp8 on Hopper): 128-row tiles.

Parameters, per kernel variant v (the expert scheme, or bf16), each falling back to the kind's
`moe_<parameter>`: `moe_<v>_compute`, `moe_<v>_memory`, `moe_<v>_latency_us`, `moe_<v>_overlap`
(as every kind's); `moe_<v>_tile_switch` = 1 turns the tile model on for that variant (0 or
absent: no padding, the flat model of before); `moe_<v>_k_overhead`: a per-tile prologue and
epilogue worth that many steps of K in each grouped GEMM (K = H for gate+up, K = I for down), so
a GEMM runs at `moe_<v>_compute` x K / (K + K0) (`moe_<v>_compute` is the long-K limit, at most
the datasheet peak): a TP-split expert of I = 90 runs its down GEMM far below the peak; `moe_<v>_reread`: the share of an
expert's weights read again from HBM by each of its M tiles beyond the first (tiles of one expert
run on different SMs, each streaming the expert's weight columns; L2 serves the rest). Skewed
routing puts many tiles on hot experts: in the weight-bound middle range the re-reads, not the
FLOPs, are why power-law routing is slower (H100 gpt-oss MXFP4, 768 tokens: 1.14 ms power-law,
0.86 ms balanced at 1,024); `moe_<v>_pad_penalty`: what a padded row of a partly filled tile costs
beyond a filled row's MMAs, as a share of them. FlashInfer's CUTLASS fp8 kernel on Hopper (per-tensor
fp8) runs a tile faster the more of it the expert fills: the tables time it slowest at one row per
expert and 0.5-0.75x of that once the rows fill the 128-row tile (E 256, H 4,096, I 2,048: 10.3 ms
at 32 tokens, 7.5 ms at 4,096, then 17.0 ms at 6,144 where each expert's 192 rows take a second
tile; E 8, H 4,096, I 14,336: 2.2-2.4 ms from 8 to 256 tokens, 1.1 ms at 512, 3.3 ms at 768). With
a compute rate per configuration, a share of the padded rows beyond their MMAs fits the rows better
than a flat tile (6.4 vs 10.6% mean error; a step for any partly filled tile: 7.1%); why a padded
row costs more than a filled one is not established (the tile's out-of-range rows are masked loads
in the kernel's mainloop, which is one candidate). `moe_<v>_pair_ns`: a cost per (token, expert)
pair the kernel routes, whether its expert is on this GPU or not (routed tokens x k). The tables'
EP rows route every token on one rank: FlashInfer's TRT-LLM kernels on B200 take 0.6-5 ns more
per pair at 16,384 tokens than at 2,048 with one to four local experts (block fp8, E 256, H 3,072,
I 1,536, EP 256: 746 us at 16,384 tokens for 512 local rows; bf16, H 2,048, I 512: 94 us), work the
local rows' bytes and FLOPs do not carry: routing and permuting every pair, and the grid the
kernels launch for the worst-case padded rows of all pairs, most of whose CTAs find no rows.
Fused epilogue (`FUSED_INTERMEDIATE`): TRT-LLM-gen's FP4 MoE applies the gated activation and
quantizes the intermediate to NVFP4 in GEMM1's epilogue, so the 16-bit round trip the counts hold
(GEMM1's output and the activation's, each written and read) is not moved; with it and the tile
rule above, refitted: 14.0 -> 13.8 % fitted on, 15.9 -> 15.6 % held out (padding penalty 0.17).
`moe_<v>_ep_latency_us`: a fixed cost an expert-parallel rank's call pays beyond a TP one (H100
gpt-oss MXFP4, OAI Triton: one token takes 67-71 us at EP 8-32, where TP 8-32 takes 38-39 us and
TP 1 61-63 us with 50 MB more weights to read).
`moe_<v>_routing_us` (TRT-LLM-gen kernels, `ROUTING_PATH_KERNELS`): the routing's cost beyond its
single-block kernel. FlashInfer's top-k routing runs up to 4 tokens in one CTA, up to 16 in its
dynamic block kernel (up to 512 experts), up to 256 in one 8-CTA cluster, more in histogram +
offsets kernels (`BlockKernelMaxNumTokens` 4, `DynBlockKernelMaxNumTokens` 16,
`MaxNumTokensSingleClusterScores`); the tables step at 16 -> 32 tokens (B200 NVFP4, E 256, k 8,
H 2,048 at EP 256, one local expert and one pair from 1 to 256 tokens: 15 us up to 4 tokens, 17-19
at 8-16, 25 from 32 on), charged from `ROUTING_BLOCK_TOKENS` + 1 tokens on (`routing_path_s`).
`moe_<v>_l2_gbps`: the rate at which a *replayed* call reads the expert weights L2 still holds
(`MoEShape.replay_bytes`, set only by a kernel benchmark that replays one layer back to back, as
AIConfigurator's harness does; a served step's other layers flush L2 between two calls of one
layer): all of them while the working set is at most half of L2 (`DeviceProfile.l2_cache_mib`),
none from a whole L2 on, linear between (`l2_resident_share`). With both, NVFP4 refitted (B200, 300
rows): 13.8 -> 12.1 % fitted on, 15.6 -> 11.5 % held out; routing 7.1 us, L2 8.1 TB/s (1.24x the
section's HBM rate: once the routing path carries the small-token rows, the fit wants little from
L2), padding penalty ~0.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import sympy

from ..sizes import as_expr, cdiv, smax, smin
from .kernels import MoEShape

if TYPE_CHECKING:
    from .device import DeviceProfile
    from .efficiency import Efficiency

INF = float("inf")
# The fused-MoE kernel vLLM 0.24 runs by default, by architecture and expert scheme ("bf16": none).
MOE_KERNELS: dict[str, dict[str, str]] = {
    "hopper": {"bf16": "triton", "fp8_block": "triton", "w8a8_int8": "triton", "fp8": "cutlass",
               "mxfp4": "oai_triton", "w4a16": "marlin"},
    "blackwell": {"bf16": "trtllm", "fp8_block": "trtllm", "fp8": "trtllm", "nvfp4": "trtllm", "mxfp4": "trtllm",
                  "w4a8_mxfp4_mxfp8": "trtllm", "w4a16": "marlin"},
}
# Schemes whose experts run another variant's kernel, costed with that variant's parameters and tiles:
# vLLM's Marlin MoE runs MXFP4 experts (VLLM_MXFP4_USE_MARLIN=1) as it runs int4 weight-only ones
# (`fused_marlin_moe`, 4-bit weights dequantized to 16-bit in the kernel; the MXFP4 scales are one
# E8M0 per 32 where int4's are an fp16 scale and a zero point per 128: the bytes are the scheme's
# own). The tables time Marlin only on Kimi-K2's int4 experts, so MXFP4 on Marlin is that fit,
# transferred.
KERNEL_OF_SCHEME: dict[str, str] = {"mxfp4_marlin": "w4a16"}
# What the report says when a (architecture, variant)'s kernel, as its tables time it, is far from what
# reading the experts' weights would take: the user may want the other scheme of the same bytes.
KERNEL_NOTES: dict[tuple[str, str], str] = {
    ("hopper", "fp8"): "per-tensor FP8 MoE on Hopper is costed as FlashInfer's CUTLASS MoE runs in vLLM's kernel "
                       "tables, 5-9x slower than reading the hit experts' weights at decode sizes (its 128-row tiles); "
                       "a checkpoint in 128 x 128 blocks (quant fp8_block) runs vLLM's Triton MoE",
}
# Expert dimensions the engine pads the weights to, by (architecture, variant): vLLM's MXFP4 method
# on SM100 with FlashInfer's TRT-LLM kernels (VLLM_USE_FLASHINFER_MOE_MXFP4_BF16 / _MXFP8) rounds
# the per-GPU intermediate size and the hidden size up to multiples of 256 (`Mxfp4MoEMethod.
# create_weights`). The tables show it: B200 MXFP4 x MXFP8, H 4,096, I 2,048 runs TP 8, 16 and 32
# (I / tp = 256, 128, 64) in the same 85 us at 32 tokens.
PAD_TO: dict[tuple[str, str], int] = {("blackwell", "mxfp4"): 256, ("blackwell", "w4a8_mxfp4_mxfp8"): 256}
# Kernels whose gate+up GEMM applies the gated activation and quantizes the intermediate in its
# epilogue, by (architecture, variant): TRT-LLM-gen's FP4 MoE (FlashInfer's FP4 launcher keeps no
# activation buffer: GEMM1 writes the NVFP4 intermediate and its scale factors, GEMM2 reads them;
# its DeepSeek-FP8 path has a separate activation kernel and buffer). The intermediate's 16-bit round
# trip (GEMM1's output written and read, the activation's output written and read by the quantizer)
# is not moved: 2 x (n1 + I) activation elements per (token, expert) pair fewer bytes.
FUSED_INTERMEDIATE: frozenset[tuple[str, str]] = frozenset({("blackwell", "nvfp4")})
# (bound, tile rows): the first rule whose bound is >= the size wins. `tokens` rules read the
# step's tokens M, `rows` rules the average rows per hit expert.
TOKEN_RULES: dict[str, tuple[tuple[float, int], ...]] = {
    "cutlass": ((INF, 128),),
}
# `local` rules read the (token, expert) pairs the step routes per expert on this GPU, hit or not:
# T x k / (E / ep), what FlashInfer's launcher sizes its tile by.
LOCAL_RULES: dict[str, tuple[tuple[float, int], ...]] = {
    # FlashInfer's TRT-LLM-gen FP4 launcher without an autotuned tactic (`selectDefaultTileN`):
    # the candidates around clamp(next power of two of T k / local experts, 8, 256) on the NVFP4
    # ladder {8, ..., 256}, and the smallest of them, one step below the centre: half that power of
    # two, in [8, 128] (`computeSelectedTileN`, csrc/trtllm_fused_moe_kernel_launcher.cu).
    "trtllm_nvfp4": ((16, 8), (32, 16), (64, 32), (128, 64), (INF, 128)),
}
ROW_RULES: dict[str, tuple[tuple[float, int], ...]] = {
    "triton": ((16, 16), (32, 32), (INF, 64)),
    "triton_fp8_block": ((16, 16), (32, 32), (INF, 64)),
    "trtllm": ((8, 8), (16, 16), (32, 32), (INF, 64)),
    "oai_triton": ((16, 16), (32, 32), (64, 64), (INF, 128)),
    "marlin": ((0.9 * 8, 8), (0.9 * 16, 16), (0.9 * 32, 32), (0.9 * 48, 48), (INF, 64)),
}
# Tokens TRT-LLM-gen's routing handles in one CTA, and the kernels that route so (`routing_path_s`).
ROUTING_BLOCK_TOKENS = 16
ROUTING_PATH_KERNELS = frozenset({"trtllm"})
MOE_VARIANT_PARAMS = ("compute", "memory", "latency_us", "overlap", "tile_switch", "k_overhead", "memory_latency_us", "reread",
                      "pad_penalty", "pair_ns", "ep_latency_us", "l2_gbps", "routing_us")
MOE_VARIANTS = ("bf16", "fp8", "fp8_block", "w8a8_int8", "mxfp4", "w4a8_mxfp4_mxfp8", "w4a16", "nvfp4")
_FRACTION = (1e-6, 1.0)
_BOUNDS = {"compute": _FRACTION, "memory": _FRACTION, "latency_us": (0.0, float("inf")), "overlap": (0.0, 1.0),
           "tile_switch": (0.0, 1.0), "k_overhead": (0.0, float("inf")), "memory_latency_us": (0.0, float("inf")), "reread": (0.0, 1.0),
           "pad_penalty": (0.0, 8.0), "pair_ns": (0.0, float("inf")), "ep_latency_us": (0.0, float("inf")),
           "l2_gbps": (0.0, float("inf")), "routing_us": (0.0, float("inf"))}
MOE_KEYS: dict[str, tuple[float, float]] = {
    f"moe_{v}_{p}": _BOUNDS[p] for v in MOE_VARIANTS for p in MOE_VARIANT_PARAMS}


def kernel_note(architecture: str, variant: str, efficiency: Mapping[str, Any]) -> str:
    """`KERNEL_NOTES`' line for this variant's MoE kernel, when the section in force fits that kernel."""
    note = KERNEL_NOTES.get((architecture, variant), "")
    return note if note and any(k.startswith(f"moe_{variant}_") for k in efficiency) else ""


def kernel_for(architecture: str, variant: str) -> str:
    """The fused-MoE kernel of `variant` on `architecture` (KeyError-free: "" when not tabled)."""
    return MOE_KERNELS.get(architecture, {}).get(variant, "")


def _piecewise(size: Any, rules: tuple[tuple[float, int], ...]) -> Any:
    """The tile of the first rule whose bound is >= size (a Piecewise for a symbolic size)."""
    if not isinstance(size, sympy.Basic):
        return next(tile for bound, tile in rules if size <= bound)
    pieces = [(tile, as_expr(size) <= bound) for bound, tile in rules[:-1]]
    return sympy.Piecewise(*pieces, (rules[-1][1], True))


def tile_rows(kernel: str, variant: str, tokens: Any, rows_per_expert: Any, rows_per_local_expert: Any = None) -> Any:
    """Rows of the M tile `kernel` runs a grouped GEMM in (`tokens`: the step's, rows: per hit expert;
    `rows_per_local_expert`: the step's pairs over this GPU's experts, T x k / (E / ep))."""
    if kernel == "triton" and variant == "fp8_block":
        kernel = "triton_fp8_block"
    if f"{kernel}_{variant}" in LOCAL_RULES:
        if rows_per_local_expert is None:
            raise ValueError(f"the {kernel} {variant} tile follows the pairs per local expert; none given")
        return _piecewise(rows_per_local_expert, LOCAL_RULES[f"{kernel}_{variant}"])
    if kernel in TOKEN_RULES:
        return _piecewise(tokens, TOKEN_RULES[kernel])
    if kernel in ROW_RULES:
        return _piecewise(rows_per_expert, ROW_RULES[kernel])
    raise ValueError(f"no tile rule for fused-MoE kernel {kernel!r}; known: {sorted({*TOKEN_RULES, *ROW_RULES})}")


def expected_tiles(rows: Any, hit: Any, tile: Any, spread: int) -> Any:
    """Expected M tiles of one expert with `rows` expected rows, hit with probability `hit`.

    Exact rows (spread 0): ceil(rows / tile). Random rows (spread 1): below half a tile an expert
    hit pays one tile (P(hit)); above it the rows' residue over the tile is spread evenly, so it
    pays rows / tile + 1/2 on average: max(P(hit), rows / tile + P(hit) / 2)."""
    if spread:
        return smax(hit, rows / tile + hit / 2)
    return cdiv(rows, tile)


def padded_rows(shape: MoEShape, tile: Any) -> Any:
    """Expected rows the grouped GEMMs run on this GPU, padding included (>= shape.pairs)."""
    total: Any = 0
    n = shape.routed
    for count, q in shape.bins:
        if q <= 0:
            continue
        rows = n * q
        if shape.spread:
            miss = sympy.Float(1 - q) if isinstance(n, sympy.Basic) else 1 - q
            hit = 1 - miss ** n if q < 1 else 1
        else:
            hit = 1
        total = total + count * tile * expected_tiles(rows, hit, tile, shape.spread)
    return total


def rows_per_hit_expert(shape: MoEShape) -> Any:
    """Average rows of a hit expert (what the adaptive-tile kernels size their tile by)."""
    return shape.pairs / hit_experts(shape)


def hit_experts(shape: MoEShape) -> Any:
    """Expected experts hit on this GPU (exact under `spread` 0)."""
    n = shape.routed
    hit: Any = 0
    for count, q in shape.bins:
        if q <= 0:
            continue
        if shape.spread and q < 1:
            miss = sympy.Float(1 - q) if isinstance(n, sympy.Basic) else 1 - q
            hit = hit + count * (1 - miss ** n)
        else:
            hit = hit + count
    return hit


def _key(table: Mapping[str, Any], variant: str, name: str, default: Any) -> Any:
    return table.get(f"moe_{variant}_{name}", table.get(f"moe_{name}", default))


def moe_efficiency(base: Efficiency, counts: Any, profile: DeviceProfile) -> Efficiency:
    """The kind `moe` with its kernel: the variant's fractions and latency, and with
    `moe_<v>_tile_switch` the tensor-core rate scaled by FLOPs / (FLOPs + padding FLOPs)."""
    shape = counts.kernel
    if not isinstance(shape, MoEShape):
        return base
    table = profile.efficiency
    v = KERNEL_OF_SCHEME.get(shape.variant, shape.variant)
    if not any(k.startswith(f"moe_{v}_") for k in table):
        return base
    compute = table.get(f"moe_{v}_compute")
    by_precision = dict(base.by_precision)
    if compute is not None:
        by_precision = {p: compute for p in counts.flops if p != "vector"}
    base = replace(base, compute=base.compute if compute is None else compute,
                   by_precision=MappingProxyType(by_precision), memory=_key(table, v, "memory", base.memory),
                   latency_s=_key(table, v, "latency_us", base.latency_s * 1e6) * 1e-6,
                   memory_latency_s=_key(table, v, "memory_latency_us", base.memory_latency_s * 1e6) * 1e-6,
                   overlap=_key(table, v, "overlap", base.overlap))
    pair_ns = table.get(f"moe_{v}_pair_ns", 0.0)
    if pair_ns:  # per (token, expert) pair the kernel routes, local or not: routing, permutation, grid slots
        base = replace(base, latency_s=base.latency_s + pair_ns * 1e-9 * shape.routed * shape.top_k)
    routing = table.get(f"moe_{v}_routing_us", 0.0)
    if routing and kernel_for(profile.architecture, v) in ROUTING_PATH_KERNELS:  # the routing kernel's path by the tokens it routes (`routing_path_s`)
        base = replace(base, latency_s=base.latency_s + routing_path_s(shape.routed, routing * 1e-6))
    ep_latency = table.get(f"moe_{v}_ep_latency_us", 0.0)
    if ep_latency and shape.ep > 1:  # an expert-parallel rank's call: the expert map's extra kernels
        base = replace(base, latency_s=base.latency_s + ep_latency * 1e-6)
    pad = PAD_TO.get((profile.architecture, v))
    hidden, inter = shape.hidden, shape.intermediate
    if pad:  # the GEMMs run the padded dimensions
        hidden, inter = -(-shape.hidden // pad) * pad, -(-shape.intermediate // pad) * pad
    if (profile.architecture, v) in FUSED_INTERMEDIATE and counts.bytes:
        n1 = (shape.row_flops - 2 * shape.hidden * shape.intermediate) / (2 * shape.hidden)  # 2 I gated, I not
        saved = shape.pairs * shape.act_bytes * 2 * (n1 + shape.intermediate)
        kept = counts.bytes - saved
        if not isinstance(kept, sympy.Basic) and kept <= 0:
            raise ValueError(f"fused-MoE intermediate bytes {saved} exceed the layer's {counts.bytes}: the "
                             f"counts do not hold the unfused activation round trip")
        base = replace(base, memory=base.memory * counts.bytes / kept)
    k0 = table.get(f"moe_{v}_k_overhead", 0.0)
    if k0:  # a per-tile prologue / epilogue worth k0 steps of K, in each GEMM (K = H, then K = I)
        up, down = shape.row_flops - 2 * shape.hidden * shape.intermediate, 2 * shape.hidden * shape.intermediate
        slow = (up * (1 + k0 / hidden) + down * (1 + k0 / inter)) / shape.row_flops
        base = base.with_compute(lambda c: c / slow)
    if pad and counts.bytes:  # the padded weights' MMAs and bytes (H x I in both GEMMs)
        grow = hidden * inter / (shape.hidden * shape.intermediate)
        extra = (grow - 1) * hit_experts(shape) * shape.expert_bytes
        base = replace(base.with_compute(lambda c: c / grow), memory=base.memory * counts.bytes / (counts.bytes + extra))
    kernel = kernel_for(profile.architecture, v)
    if table.get(f"moe_{v}_tile_switch") and kernel:
        base = _tiled(base, counts, shape, table, v, kernel)
    return _l2_resident(base, counts, shape, table.get(f"moe_{v}_l2_gbps", 0.0), profile)


def _tiled(base: Efficiency, counts: Any, shape: MoEShape, table: Mapping[str, Any], v: str, kernel: str) -> Efficiency:
    """The M-tile padding (and its penalty) on the tensor-core rate, the tiles' weight re-reads on memory."""
    tokens = shape.routed
    tile = tile_rows(kernel, v, tokens, rows_per_hit_expert(shape), tokens * shape.top_k / shape.experts)
    work = sum((f for p, f in counts.flops.items() if p != "vector"), 0)
    padded = padded_rows(shape, tile)
    empty = (1 + table.get(f"moe_{v}_pad_penalty", 0.0)) * (padded - shape.pairs)  # a padded row's MMAs, and more
    factor = work / (work + empty * shape.row_flops)
    base = base.with_compute(lambda c: c * factor)
    reread = table.get(f"moe_{v}_reread", 0.0)
    if reread and counts.bytes:  # every M tile of an expert beyond its first streams its weights again
        extra = reread * (padded / tile - hit_experts(shape)) * shape.expert_bytes
        base = replace(base, memory=base.memory * counts.bytes / (counts.bytes + extra))
    return base


def routing_path_s(tokens: Any, cluster_s: float) -> Any:
    """What the routing costs beyond its single-block kernel: TRT-LLM-gen's top-k routing
    (`routingRenormalize`, FlashInfer's csrc/trtllm_fused_moe_routing_*.cu) routes up to
    `ROUTING_BLOCK_TOKENS` tokens in one CTA (`BlockKernelMaxNumTokens` 4, then the dynamic block
    kernel to `DynBlockKernelMaxNumTokens` 16, for up to 512 experts), more in an 8-CTA cluster
    kernel (up to 256 tokens) or its histogram + offsets kernels, `cluster_s` more per call."""
    if isinstance(tokens, sympy.Basic) and not tokens.is_number:
        return sympy.Piecewise((0, as_expr(tokens) <= ROUTING_BLOCK_TOKENS), (cluster_s, True))
    return cluster_s if tokens > ROUTING_BLOCK_TOKENS else 0


def l2_resident_share(replay_bytes: Any, l2_bytes: float) -> Any:
    """Share of a replayed call's expert weights still in an L2 of `l2_bytes` when the call runs
    again (`MoEShape.replay_bytes` touched in between): all of them up to half the L2, none from a
    whole L2 on (a cyclic stream larger than an LRU cache misses every line), linear in between
    (the same L2 holds the activations, scales and routing buffers, and its set-associative
    placement overflows some sets before the total reaches the capacity)."""
    if not l2_bytes:
        return 0
    return smin(1, smax(0, 2 - 2 * replay_bytes / l2_bytes))


def _l2_resident(base: Efficiency, counts: Any, shape: MoEShape, l2_gbps: float, profile: DeviceProfile) -> Efficiency:
    """A benchmark's replays of one layer find its hit experts' weights in L2 while they fit
    (`l2_resident_share`): those bytes stream at `moe_<v>_l2_gbps`, the rest at the HBM fraction.
    Off (0) in a served step (`replay_bytes` 0) and for a variant without the key."""
    replay = shape.replay_bytes
    if not l2_gbps or not counts.bytes or (not isinstance(replay, sympy.Basic) and replay <= 0):
        return base
    resident = l2_resident_share(replay, profile.l2_cache_mib * 2**20) * hit_experts(shape) * shape.expert_bytes
    if not isinstance(resident, sympy.Basic) and not 0 <= resident <= counts.bytes:
        raise ValueError(f"L2-resident expert bytes {resident} outside the layer's 0..{counts.bytes}")
    hbm = profile.memory_bandwidth_gbps * base.memory  # GB/s the HBM-read bytes stream at
    return replace(base, memory=base.memory * counts.bytes / (counts.bytes - resident + resident * hbm / l2_gbps))
