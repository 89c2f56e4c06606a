"""Serving engines and the per-engine efficiency sections of a device profile.

Owns the engine vocabulary (`ENGINES`), the table of which calibrated section stands in for an
engine that has none (`NEAREST`), the default engine, and `select_engine(profile, engine)`: the
profile whose `efficiency` is that engine's section, with a note when another engine's section
stands in for it.

Why per engine: the same op runs different kernels under different engines (CUTLASS scaled-mm vs
`torch._scaled_mm` for FP8 GEMMs, FlashAttention-3 vs FlashInfer, Triton vs CUTLASS fused MoE,
vLLM's custom all-reduce vs NCCL), so a profile's fitted efficiencies hold for the engine whose
kernels were measured. A profile's `[efficiency]` table is either one sub-table per engine
(`[efficiency.vllm]`, `[efficiency.torch]`) or, for profiles written before engines existed, flat
keys, which are the `torch` section (the PyTorch-kernel harness they were fitted with).

Selection never changes the roofline's inputs other than `DeviceProfile.efficiency`: the op
timing code sees one flat table, whatever engine was asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import InvalidArgumentError, InvalidProfileError, choices

if TYPE_CHECKING:
    from .device import DeviceProfile

# vllm: vLLM's own kernels (FA3 / FlashInfer, CUTLASS scaled-mm, Triton fused MoE, custom
# all-reduce); sglang and trtllm: their engines; torch: plain PyTorch kernels (cuBLAS via
# F.linear, torch._scaled_mm, SDPA, torch.compile'd elementwise), as benchmarks/calibrate_device.py
# times them.
ENGINES = ("vllm", "sglang", "trtllm", "torch")
# The engine `analyze` / `op_cost` / the CLI cost for when none is given: what users deploy.
DEFAULT_ENGINE = "vllm"
# engine -> the sections that stand in for it, nearest first (shared kernels first: SGLang and
# TensorRT-LLM run FlashInfer / CUTLASS kernels close to vLLM's; plain PyTorch is the farthest).
NEAREST: dict[str, tuple[str, ...]] = {
    "vllm": ("sglang", "trtllm", "torch"),
    "sglang": ("vllm", "trtllm", "torch"),
    "trtllm": ("vllm", "sglang", "torch"),
    "torch": ("vllm", "sglang", "trtllm"),
}
LEGACY_ENGINE = "torch"  # the engine a flat [efficiency] table describes
# (engine, GEMM variant) -> the kernel the engine runs for it, where engines differ enough that one
# engine's fit of that variant must not stand in for another's: a section standing in for an engine
# keeps a listed variant's `gemm_<variant>_*` keys only when both engines run the same kernel, else
# those GEMMs take the section's generic GEMM parameters (and the report says no fit covers them).
# NVFP4: vLLM 0.24 and SGLang 0.5.14 run FlashInfer's CuTe DSL linear behind a separate activation
# quantization (AIConfigurator's B200 tables: 11-13 us for an 8k x 2.5k-8k projection at M 16-64, the
# time of the bf16 GEMM reading 3.6x the bytes); TensorRT-LLM runs its own FP4 GEMMs (trtllm-gen /
# CUTLASS) with the quantization fused into the preceding norm or activation.
GEMM_KERNELS: dict[tuple[str, str], str] = {
    ("vllm", "nvfp4"): "FlashInfer CuTe DSL",
    ("sglang", "nvfp4"): "FlashInfer CuTe DSL",
    ("trtllm", "nvfp4"): "TensorRT-LLM FP4 GEMM",
}


def check_engine(engine: Any) -> str:
    if not isinstance(engine, str) or engine.strip().lower() not in ENGINES:
        raise InvalidArgumentError(f"engine must be one of {choices(ENGINES)}, got {engine!r}")
    return engine.strip().lower()


def split_sections(table: Mapping[str, Any], path: str) -> dict[str, dict[str, Any]]:
    """engine -> its efficiency keys, from a profile's [efficiency] table (flat = the torch section)."""
    nested = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if not nested:
        return {LEGACY_ENGINE: dict(table)} if table else {}
    flat = sorted(k for k in table if k not in nested)
    if flat:
        raise InvalidProfileError(
            f"{path}: [efficiency] mixes flat keys {flat[:4]} with engine sections {sorted(nested)}; put every key "
            f"in an engine section [efficiency.<engine>], engine one of {choices(ENGINES)}")
    unknown = sorted(k for k in nested if k not in ENGINES)
    if unknown:
        raise InvalidProfileError(f"{path}: unknown engine section(s) {['efficiency.' + k for k in unknown]}; "
                                  f"accepted engines: {choices(ENGINES)}")
    return {k: dict(v) for k, v in nested.items()}


def resolve_section(available: tuple[str, ...], engine: str, device: str) -> tuple[str, str]:
    """(section used, note): the engine's own section, else the nearest calibrated one."""
    if engine in available or not available:
        return engine if engine in available else "", ""
    used = next((e for e in NEAREST[engine] if e in available), available[0])
    return used, (f"engine {engine}: device {device} has no {engine}-calibrated efficiency section; "
                  f"using the {used} section (nearest calibrated engine)")


def select_engine(profile: DeviceProfile, engine: str | None = None) -> DeviceProfile:
    """`profile` with the efficiency section of `engine` (default: DEFAULT_ENGINE) in force.

    A profile already resolved for that engine is returned unchanged (so a caller's edited copy,
    e.g. a calibration fit in progress, keeps its values)."""
    wanted = DEFAULT_ENGINE if engine is None else check_engine(engine)
    if profile.engine_requested == wanted or (engine is None and profile.engine_requested):
        return profile
    sections = profile.engine_sections
    used, note = resolve_section(tuple(sections), wanted, profile.name)
    efficiency = MappingProxyType(borrowed_section(sections.get(used, {}), used, wanted))
    return replace(profile, efficiency=efficiency, engine=used or wanted, engine_requested=wanted, engine_note=note)


def borrowed_section(section: Mapping[str, Any], used: str, wanted: str) -> dict[str, Any]:
    """`used`'s section as it stands in for `wanted`: without the GEMM variants whose kernels the two
    engines do not share (`GEMM_KERNELS`)."""
    if used == wanted:
        return dict(section)
    # a variant the wanted engine does not list runs the same kernel as far as the table knows: kept
    prefixes = tuple(f"gemm_{variant}_" for (engine, variant), kernel in GEMM_KERNELS.items()
                     if engine == used and GEMM_KERNELS.get((wanted, variant), kernel) != kernel)
    return {k: v for k, v in section.items() if not k.startswith(prefixes)}


TRANSFERRED = "transferred from"  # how a profile's [sources] marks values copied from another device


def is_transferred(profile: DeviceProfile, engine: str) -> bool:
    """Whether `profile`'s section for `engine` was copied from another device rather than fitted
    on this one: every key's source (its own `efficiency.<engine>.<key>` entry, else the section's
    `efficiency.<engine>`) starts with "transferred from" (benchmarks/calibrate_device.py
    --transfer-engine writes it so)."""
    keys = profile.engine_sections.get(engine, {})
    texts = [profile.sources.get(f"efficiency.{engine}.{k}", profile.sources.get(f"efficiency.{engine}", ""))
             for k in keys]
    return bool(texts) and all(t.startswith(TRANSFERRED) for t in texts)


def transfer_note(profile: DeviceProfile) -> str:
    """For the report: the section in force was fitted on another device ("" when it was fitted on this
    one, or the profile says nothing about it). The origin is its source's own words up to the first
    parenthesis or colon ("transferred from h100-sxm")."""
    engine = profile.engine
    if not engine or not is_transferred(profile, engine):
        return ""
    text = profile.sources.get(f"efficiency.{engine}") or next(
        profile.sources[f"efficiency.{engine}.{k}"] for k in profile.engine_sections[engine]
        if f"efficiency.{engine}.{k}" in profile.sources)
    origin = text.split(" (")[0].split(":")[0].strip()
    return (f"{profile.name}'s {engine} efficiency section is {origin}, not fitted on measurements of "
            f"{profile.name}: expect larger errors than on the device it was fitted on")
