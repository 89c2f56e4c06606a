"""Fit an engine's efficiency section from NVIDIA AIConfigurator's kernel tables, and check it held out.

    python benchmarks/aic_fit.py --aic ../shared/calibration/aic/h100_sxm --device h100-sxm   # error table
    python benchmarks/calibrate_device.py --from-aic ../shared/calibration/aic/h100_sxm --engine vllm \\
        --base backends/profiles/h100_sxm.toml --out backends/profiles/h100_sxm.toml            # write the section
    python benchmarks/calibrate_device.py --from-aic ../shared/calibration/aic/b200_sxm --engine vllm \\
        --base backends/profiles/b200.toml --stages "gemm fp8,gemm fp8_block" \\
        --out backends/profiles/b200.toml        # refit named stages from the shipped section, nothing else

Which rows of the tables each stage reads, and which structural switches of the engine's kernels
the fit fixes, is the engine's entry in `aic_engine_kernels.py` (vLLM 0.24, TensorRT-LLM 1.3.0rc20;
the engine read from the tables' `framework` column).

Owns the split of every table into fitted and held-out shape families (`held_out`: GEMM (N, K)
families, attention head configurations, MoE expert configurations, the 4-GPU collective group size,
MLA local head counts, DSA (model, local heads) configurations, gated DeltaNet (key, value) head
pairs; chosen by a stable hash, never seen by the fit), the fit itself (`fit_engine`:
`calibration_fit.fit_stage` per stage, on the fitted families only) and the error tables (fitted-on vs
held-out, worst cases named). The stages it fits (`STAGES`: which parameters of
`backends/efficiency.py` / `backends/communication.py` each table informs, with bounds and meanings)
are `aic_stages.py`'s.

Models, not lookup tables: every parameter is a physical quantity of the kernel the engine runs
— a fraction of a datasheet peak (tensor-core rate, HBM bandwidth, NVLink bandwidth), a fixed
cost per call in µs, a per-tile or per-step cost, a share of the last wave lost — and the
shape dependence (tile quantization, wave effects, split-K, the two NCCL protocol families,
vLLM's switch from its custom all-reduce to NCCL) is the model's, fitted once per kernel.

`aic_stages.py` (the stage table, ~350 lines) was split out of this file at 637 lines; this module
re-exports its names, so `calibrate_device.py` and the tests read both from here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import aic_engine_kernels as aek  # noqa: E402
import aic_sanity  # noqa: E402
import aic_tables as at  # noqa: E402
import calibration_fit as cf  # noqa: E402
from aic_stages import (  # noqa: E402, F401  (re-exported: importers read the stage table from aic_fit)
    DSA_KERNEL_SWITCHES,
    DSA_STAGES,
    FP8_BLOCK_GPU_LATENCY_US,
    FP8_LOSS,
    FP8_LOSS_SCALE,
    GDN_STAGES,
    MLA_STAGES,
    MOE_STAGES,
    STAGES,
    cta_gbps,
)
from aic_table_rows import family_hash  # noqa: E402
from calibration_cases import Case  # noqa: E402

from tensor_cast.backends.communication import CUSTOM_MAX_KEY  # noqa: E402
from tensor_cast.backends.device import DeviceProfile, load_device  # noqa: E402
from tensor_cast.backends.moe_tiles import ROUTING_PATH_KERNELS, kernel_for  # noqa: E402

HELD_OUT_SHARE = 0.2  # of the GEMM (N, K) families
# of the MLA head-count families (1..128 local heads): family_hash("heads<h>", "mla") < 0.45 keeps
# heads 2 and 64 out of the fit
MLA_HELD_OUT_SHARE = 0.45
# of the DSA (model, local heads) families: family_hash("<model> heads<h>", "dsa") < 0.35 keeps
# DeepSeek-V3.2 at 2, 16, 32, 128 heads and GLM-5 at 32 heads out of the fit
DSA_HELD_OUT_SHARE = 0.35
# of the gated DeltaNet (key heads, value heads) families on the GPU (18 in the tables)
GDN_HELD_OUT_SHARE = 0.25


def held_out(case: Case) -> bool:
    """Whether the case's shape family is kept out of the fit (stable across runs); rows of a
    kernel the fit does not model are never seen by it."""
    if case.stage == at.NOT_FITTED:
        return True
    if case.stage.startswith("gemm"):
        return family_hash(case.group, "gemm") < HELD_OUT_SHARE
    if case.stage.startswith("attention"):
        return family_hash(case.group, "attention") < HELD_OUT_SHARE
    if case.stage.startswith("moe"):
        return family_hash(case.group, "moe") < 0.25
    if case.stage.startswith("mla"):
        return family_hash(case.group, "mla") < MLA_HELD_OUT_SHARE
    if case.stage.startswith("dsa"):
        return family_hash(case.group, "dsa") < DSA_HELD_OUT_SHARE
    if case.stage.startswith("gdn"):
        return family_hash(case.group, "gdn") < GDN_HELD_OUT_SHARE
    return case.group == "n4"  # collectives: the fit sees 2 and 8 GPUs


def usable(case: Case) -> bool:
    """Rows whose kernel the engine runs for that shape: its custom all-reduce only up to its size
    limit (`EngineKernels.custom_max_mib`; larger all-reduces go to NCCL)."""
    return case.row.extra != at.ABOVE_CUSTOM_LIMIT


def beats_hbm(case: Case, device: DeviceProfile) -> bool:
    """A row faster than its weights' HBM reads allow at the datasheet bandwidth (`aic_sanity.hbm_bound_s`):
    not a DRAM-bound measurement, so kept out of the fit (H100's TensorRT-LLM tables: 2 power-law MoE rows of
    the sample, whose 5 replayed draws hit fewer experts than the one they are costed with)."""
    bound = aic_sanity.hbm_bound_s(case, device.memory_bandwidth_gbps * 1e9, device.l2_cache_mib * 2**20)
    return bool(bound) and case.measured_s < bound


def isolated(case: Case) -> bool:
    """A GEMM row the table contradicts on both sides in M (`aic_tables.ISOLATED`): kept out of the
    fit, reported with and without."""
    return case.row.extra == at.ISOLATED


def predict(case: Case, profile: DeviceProfile) -> float:
    """The case's time; an NCCL all-reduce row is costed as NCCL (without vLLM's custom switch)."""
    if case.stage == "nccl all_reduce" and CUSTOM_MAX_KEY in profile.efficiency:
        efficiency = {k: v for k, v in profile.efficiency.items() if k != CUSTOM_MAX_KEY}
        profile = replace(profile, efficiency=MappingProxyType(efficiency))
    return case.predict(profile)


def _attention_stage(case: Case) -> str:
    return case.stage + (" fp8kv" if case.row.params.get("kv") == "fp8" else "")


KV_STAGED = ("attention", "mla", "dsa")  # stages split by KV-cache dtype (an 8-bit cache runs its own kernel path)


@dataclass
class EngineFit:
    values: dict[str, float]
    sources: dict[str, str]
    profile: DeviceProfile


def fit_engine(cases: Sequence[Case], base: DeviceProfile, provenance: str, stages: Sequence[cf.Stage] = STAGES,
               digits: int = 3, warm_start: bool = False, engine: aek.EngineKernels = aek.VLLM) -> EngineFit:
    """Every stage on its fitted families (held-out ones excluded), earlier stages' values fixed.
    `warm_start`: each parameter starts at `base`'s value where it has one (a refit from a shipped
    section), not at the stage's default start. `engine`: whose kernels the cases timed (its
    structural switches are fixed, `aic_engine_kernels.EngineKernels`)."""
    train = [c for c in cases if usable(c) and not held_out(c) and not isolated(c) and not beats_hbm(c, base)]
    train = [replace(c, stage=_attention_stage(c)) if c.stage.startswith(KV_STAGED) else c for c in train]
    values: dict[str, float] = {}
    sources: dict[str, str] = {}
    current = replace(base, engine=engine.name)  # the engine's kernels (moe_tiles.ENGINE_MOE_KERNELS) while fitting
    pack = engine.pack_gqa.get(base.architecture, 0)
    for stage in stages:
        if stage.name in engine.stage_notes:
            stage = replace(stage, note=engine.stage_notes[stage.name])
        if stage.name in engine.stage_fixed:  # the engine's kernel sets these: not fitted
            fixed = {**stage.fixed, **engine.stage_fixed[stage.name]}
            stage = replace(stage, fixed=fixed, params=tuple(p for p in stage.params if p.key not in fixed))
        if stage.name.startswith("attention decode") and "efficiency.attention_max_splits" in stage.fixed:
            stage = replace(stage, fixed={**stage.fixed, "efficiency.attention_max_splits": engine.max_splits})
        if stage.name == "custom all_reduce":
            stage = replace(stage, fixed={**stage.fixed, f"efficiency.{CUSTOM_MAX_KEY}": engine.custom_max_mib})
        if stage.name.startswith("attention prefill"):
            fa3 = engine.fa3_tiles.get(base.architecture, 0)
            # FA3's tiles on Hopper; serial_flops only means something for FA3's kernels without overlap
            stage = replace(stage, fixed={**stage.fixed, "efficiency.attention_prefill_pack_gqa": pack,
                                          "efficiency.attention_fa3_tiles": fa3},
                            params=tuple(p for p in stage.params if fa3 or not p.key.endswith("_serial_flops")))
        if stage.name == "attention decode":
            stage = replace(stage, fixed={**stage.fixed,
                                          "efficiency.attention_fa3_tiles": engine.fa3_tiles.get(base.architecture, 0)})
        if stage.name.startswith("dsa"):
            kv = "_fp8kv" if stage.name.endswith("fp8kv") else ""
            switches = {k: v for k, v in engine.dsa_kernel_switches.get(base.architecture, {}).items()
                        if k.startswith(f"efficiency.attention{kv}_dsa_")}
            stage = replace(stage, fixed={**stage.fixed, **switches})
        if stage.name.startswith("gemm ") and stage.name.split()[1] not in engine.host_timed_gemms:
            # no eagerly launched row: a launcher's host floor is not in the tables, so it is not fitted (0); the
            # small-M rows then show the GPU's own cap instead, one CTA's operand stream (`gemm_<variant>_cta_gbps`,
            # without it SGLang's DeepGEMM row M = 5, N = 128, K = 65,536 on B200 came out 87% short)
            variant = stage.name.split()[1]
            floors = {p.key: 0.0 for p in stage.params if p.key.endswith(("_call_floor_us", "_unaligned_floor_us"))}
            cta = () if any(p.key.endswith("_cta_gbps") for p in stage.params) else (cta_gbps(variant),)
            stage = replace(stage, params=tuple(p for p in stage.params if p.key not in floors) + cta,
                            fixed={**stage.fixed, **floors})
        if stage.name.startswith("moe "):  # the routing-path term only where the kernel routes so
            routed_so = kernel_for(base.architecture, stage.name.split()[1]) in ROUTING_PATH_KERNELS
            stage = replace(stage, params=tuple(p for p in stage.params if routed_so or not p.key.endswith("_routing_us")))
        used = [c for c in train if c.stage == stage.name]
        if not used:
            continue
        if warm_start:
            stage = replace(stage, params=tuple(
                replace(p, initial=current.efficiency.get(p.key.split(".", 1)[1], p.initial))
                if p.key.startswith("efficiency.") else p for p in stage.params))
        fitted = {k: v if k in stage.fixed else cf.round_sig(v, digits)
                  for k, v in cf.fit_stage(stage, used, current).items()}
        values.update(fitted)
        current = cf.with_values(current, fitted)
        families = len({c.group for c in used})
        for param in stage.params:
            sources[param.key] = (f"fitted ({stage.name}: {len(used)} rows, {families} shape families; held-out "
                                  f"families excluded): {param.meaning} [{provenance}]")
        for key in stage.fixed:
            sources[key] = f"fixed: {stage.note} [{provenance}]"
    return EngineFit(values, sources, current)


# ---- error tables ---------------------------------------------------------------------------------
@dataclass
class ClassError:
    cls: str
    fitted_n: int
    fitted_mean: float | None
    held_n: int
    held_mean: float | None
    worst: str
    held_clean_mean: float | None = None  # held out, isolated rows (aic_tables.ISOLATED) left out
    isolated_n: int = 0  # isolated rows among the class's rows


def _pct(pred: float, meas: float) -> float:
    return 100.0 * (pred / meas - 1.0)


def _describe(case: Case) -> str:
    return f"{case.row.name} {case.row.params}"


def class_errors(cases: Sequence[Case], profile: DeviceProfile, key: Callable[[Case], str] = lambda c: c.cls
                 ) -> list[ClassError]:
    out = []
    for cls in sorted({key(c) for c in cases if usable(c)}):
        members = [c for c in cases if usable(c) and key(c) == cls]
        errors = {id(c): _pct(predict(c, profile), c.measured_s) for c in members}
        fitted = [abs(errors[id(c)]) for c in members if not held_out(c)]
        held = [abs(errors[id(c)]) for c in members if held_out(c)]
        clean = [abs(errors[id(c)]) for c in members if held_out(c) and not isolated(c)]
        worst = max(members, key=lambda c: abs(errors[id(c)]))
        out.append(ClassError(cls, len(fitted), statistics.mean(fitted) if fitted else None, len(held),
                              statistics.mean(held) if held else None,
                              f"{errors[id(worst)]:+.0f}% {_describe(worst)}" + (" (held out)" if held_out(worst) else "")
                              + (" (isolated)" if isolated(worst) else ""),
                              statistics.mean(clean) if clean else None, sum(isolated(c) for c in members)))
    return out


TARGETS = {"gemm": 10.0, "attention": 10.0, "moe": 15.0, "mla": 15.0, "dsa": 15.0, "gdn": 15.0, "nccl": 10.0, "custom": 10.0}


def family(cls: str) -> str:
    return cls.split()[0]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}%"


def error_table(errors: Sequence[ClassError], markdown: bool = False) -> str:
    from tabulate import tabulate

    rows = [[e.cls, e.fitted_n, _fmt(e.fitted_mean), e.held_n, _fmt(e.held_mean),
             _fmt(e.held_clean_mean) + (f" ({e.isolated_n})" if e.isolated_n else ""),
             f"<= {TARGETS.get(family(e.cls), 10):.0f}%", e.worst] for e in errors]
    headers = ["op class", "fitted rows", "mean |err| (fitted on)", "held-out rows", "mean |err| (held out)",
               "held out w/o isolated (isolated rows, all)", "target", "worst row"]
    return tabulate(rows, headers=headers, tablefmt="github" if markdown else "simple", maxcolwidths=[None] * 7 + [70])


def engine_profile(base: DeviceProfile, values: Mapping[str, float], source_engine: str = "torch",
                   engine: str = "") -> DeviceProfile:
    """`base` whose efficiency is `source_engine`'s section with the fitted `values` over it, costed as
    `engine`'s kernels where given."""
    start = dict(base.engine_sections.get(source_engine, base.efficiency))
    start.update({k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("efficiency.")})
    return replace(base, efficiency=MappingProxyType(start), engine=engine or base.engine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aic", required=True, help="folder of one device's AIC tables (*.csv.gz)")
    parser.add_argument("--device", required=True, help="device profile whose section is checked (or refitted)")
    parser.add_argument("--engine", default="vllm", help="the section to check (default vllm)")
    parser.add_argument("--refit", action="store_true", help="fit here instead of checking the shipped section")
    parser.add_argument("--families", default="gemm,attention,moe,collectives,mla,dsa,gdn")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    tables = aek.kernels(aek.engine_of(args.aic))  # whose kernels the tables timed, from their framework column
    cases = at.all_cases(args.aic, args.families.split(","), engine=tables)
    profile = load_device(args.device, args.engine)
    if args.refit:
        fit = fit_engine(cases, engine_profile(load_device(args.device, "torch"), {}), provenance=args.aic,
                         engine=tables)
        profile = fit.profile
        for key, value in sorted(fit.values.items()):
            print(f"{key} = {value}")
    print(f"{profile.name}, efficiency section {profile.engine}, vs {args.aic} ({tables.label})\n")
    print(error_table(class_errors(cases, profile), args.markdown))
    print()
    gemms = [c for c in cases if c.stage.startswith("gemm")]
    if gemms:  # per GEMM kernel, all M together
        print(error_table(class_errors(gemms, profile, key=lambda c: " ".join(c.cls.split()[:2]) + " (all M)"),
                          args.markdown))
        print()
    modelled = [c for c in cases if c.stage != at.NOT_FITTED]
    print(error_table(class_errors(modelled, profile, key=lambda c: family(c.cls) + " (all)"), args.markdown))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
