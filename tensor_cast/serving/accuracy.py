"""How far to trust a serving prediction: the measured error of the simulator on similar runs.

Owns the lookup of `data/measured_accuracy.json` — the per (device, engine, model family, mode)
groups of `benchmarks/serving_fidelity.py`'s comparison with measured serving runs (TTFT / TPOT of
TensorRT-LLM, vLLM and SGLang benchmarks, `../shared/serving/`), written by
`benchmarks/serving_fidelity_summary.py --package-table` — and the one line a serving report
prints from it (`accuracy_note`): the group closest to the run, its rows, whether they were in a
fit's population or held out, its TPOT and TTFT mean absolute error and median predicted /
measured ratio, and which models were measured. Where no group matches the device, the engine's
groups of the family on other devices are named; failing those, the family's groups under other
engines; where the family was never measured, the all-rows error.

A run is matched by the device profile's name (`SYSTEM_OF_PROFILE`), the engine, the model's
family (`FAMILY_OF_MODEL_TYPE`, from the config's `model_type`) and agg / disagg. The numbers are
the table's, measured at the commit it names: a modelling change regenerates it (as the goldens).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

# tensor_cast device profile -> the `system` of the measured runs
SYSTEM_OF_PROFILE = {"h100-sxm": "h100_sxm", "b200": "b200_sxm", "b300": "b300_sxm", "gb200": "gb200",
                     "gb300": "gb300"}
# config model_type -> the family the fidelity benchmark labels its rows with
FAMILY_OF_MODEL_TYPE = {
    "llama": "Llama", "qwen3": "Qwen3-dense", "qwen3_moe": "Qwen3-MoE", "qwen3_5_moe": "Qwen3.5",
    "qwen3_5_moe_text": "Qwen3.5", "deepseek_v3": "DeepSeek", "kimi_k2": "Kimi", "kimi_k25": "Kimi",
    "gpt_oss": "gpt-oss", "minimax_m2": "MiniMax", "glm_moe_dsa": "GLM",
}


@dataclass(frozen=True)
class AccuracyGroup:
    system: str
    engine: str
    family: str
    mode: str
    rows: int
    split: str  # fit | held-out | fit/held-out
    tpot_mae: float
    ttft_mae: float
    tpot_ratio: float  # median predicted / measured
    ttft_ratio: float
    models: tuple[str, ...]

    def describe(self) -> str:
        split = {"fit": "in the overhead fit's population", "held-out": "held out from every fit"}.get(
            self.split, "partly in a fit's population")
        return (f"{self.engine} {self.family} {self.mode} on {self.system}, {self.rows} measured runs ({split}; "
                f"{', '.join(self.models)}): TPOT mean abs error {self.tpot_mae:.1%} (median predicted/measured "
                f"{self.tpot_ratio:.2f}), TTFT {self.ttft_mae:.1%} ({self.ttft_ratio:.2f})")


@dataclass(frozen=True)
class AccuracyTable:
    measured_with: str  # the commit and command the groups were measured with
    overall: dict[str, Any]  # rows, tpot_mae, ttft_mae over every row
    groups: tuple[AccuracyGroup, ...]


@cache
def load_table() -> AccuracyTable:
    data = json.loads(resources.files("tensor_cast.serving").joinpath("data/measured_accuracy.json").read_text())
    groups = tuple(AccuracyGroup(**{**g, "models": tuple(g["models"])}) for g in data["groups"])
    return AccuracyTable(data["measured_with"], data["overall"], groups)


SHOWN = 3  # groups named in one line; the rest are counted


def _some(groups: list[AccuracyGroup]) -> str:
    """The groups with the most rows first, at most SHOWN of them."""
    ranked = sorted(groups, key=lambda g: (-g.rows, g.system, g.engine))
    more = f"; and {len(ranked) - SHOWN} more group(s)" if len(ranked) > SHOWN else ""
    return "; ".join(g.describe() for g in ranked[:SHOWN]) + more


def family_of(model_type: str) -> str | None:
    return FAMILY_OF_MODEL_TYPE.get(model_type)


def accuracy_note(model_type: str, device: str, engine: str, mode: str) -> str:
    """The line a serving report prints (module docstring)."""
    table = load_table()
    family, system = family_of(model_type), SYSTEM_OF_PROFILE.get(device)
    source = f"benchmarks/serving_fidelity.py, {table.measured_with}"
    same = [g for g in table.groups if (g.engine, g.family, g.mode) == (engine, family, mode)]
    exact = [g for g in same if g.system == system]
    if exact:
        return f"measured accuracy on similar runs: {exact[0].describe()} [{source}]"
    kin = [g for g in table.groups if (g.family, g.mode) == (family, mode)]
    for groups, missing, elsewhere in ((same, f"{engine} {family} {mode} on {device}", "on other devices"),
                                       (kin, f"{family} {mode} under {engine}", "under other engines")):
        if groups:
            return f"no measured runs of {missing} to check against; {elsewhere}: {_some(groups)} [{source}]"
    o = table.overall
    what = f"the {family} family" if family else f"model_type {model_type!r}"
    return (f"no measured runs of {what} under {engine} {mode} to check against; over all {o['rows']} measured runs "
            f"(every device, engine and family): TPOT mean abs error {o['tpot_mae']:.1%}, TTFT {o['ttft_mae']:.1%} "
            f"[{source}]")
