"""Which AIConfigurator table rows are faster than the hardware allows, read as tensor_cast reads them.

    python benchmarks/aic_sanity.py --aic /tmp/aic_engines/trtllm/b200_sxm --device b200

For every GEMM and MoE row (`aic_tables`), the time its weights need from HBM at the datasheet
bandwidth (`memory.bandwidth_gbps`) and its FLOPs at the datasheet tensor peak, against the measured
latency. What must come from HBM follows what the harness replays (AIConfigurator's collectors, facts
only):
- GEMM (collect_gemm.py, vLLM's and TensorRT-LLM's): a CUDA graph replays min(5, ceil(L2 / W))
  copies of the weight W back to back, so whenever W >= L2 / 5 the copies together exceed the L2 and
  each call streams its weight from HBM; smaller weights can stay in L2 (not checked).
- MoE (collect_moe.py): a balanced row replays one routing, a power-law row cycles 5 draws, each in one
  CUDA graph with no L2 flush: the hit experts' weights are read from HBM except the share the L2
  keeps between replays (`moe_tiles.l2_resident_share` of the replayed experts' bytes, the model the
  fit uses).
A row faster than its HBM bound (ratio < 1) is not a DRAM-bound measurement: the table prints how many
per class and the worst. vLLM's shared tables pass on H100 SXM and B200; TensorRT-LLM's H100 tables have 2
power-law MoE rows below 1 (README, "Accuracy on TensorRT-LLM's own kernels"), which `aic_fit.beats_hbm`
keeps out of a fit.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import aic_tables as at  # noqa: E402
from tabulate import tabulate  # noqa: E402

from tensor_cast.backends.device import load_device  # noqa: E402
from tensor_cast.backends.moe_tiles import hit_experts, l2_resident_share  # noqa: E402
from tensor_cast.deployment.quantization import scheme  # noqa: E402

REPLAYED_COPIES = 5


def weight_bytes(dtype: str) -> float:
    """Bytes per weight element of a GEMM row's dtype, scales included (the quantization schemes' own)."""
    return 2.0 if dtype == "bf16" else float(scheme(dtype).weight_bytes)


def hbm_bound_s(case: at.Case, hbm_bps: float, l2_bytes: float) -> float | None:
    """Seconds the row's weights need from HBM at the datasheet bandwidth (None: not bound by HBM)."""
    if case.stage.startswith("gemm") or case.cls == at.QUANT_BOUND_CLASS:
        p = case.row.params
        weight = p["N"] * p["K"] * weight_bytes(case.row.dtype)
        return weight / hbm_bps if weight * REPLAYED_COPIES >= l2_bytes else None
    if case.cls.startswith("moe"):
        shape = case.ops[0].counts.kernel
        weights = float(hit_experts(shape) * shape.expert_bytes)
        resident = float(l2_resident_share(shape.replay_bytes, l2_bytes)) * weights
        return (weights - resident) / hbm_bps
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--aic", required=True, help="folder of one device's AIC tables (*.csv.gz)")
    parser.add_argument("--device", required=True, help="device profile (its datasheet bandwidth and L2)")
    args = parser.parse_args(argv)
    profile = load_device(args.device)
    hbm, l2 = profile.memory_bandwidth_gbps * 1e9, profile.l2_cache_mib * 2**20
    cases = at.all_cases(args.aic, ("gemm", "moe"))
    by_class: dict[str, list[tuple[float, at.Case]]] = defaultdict(list)
    for case in cases:
        bound = hbm_bound_s(case, hbm, l2)
        if bound:
            by_class[case.cls].append((case.measured_s / bound, case))
    rows = []
    for cls, ratios in sorted(by_class.items()):
        fast = [r for r, _ in ratios if r < 1]
        worst_ratio, worst = min(ratios, key=lambda x: x[0])
        rows.append([cls, len(ratios), len(fast), f"{worst_ratio:.2f}", f"{worst.row.name} {worst.row.params}"])
    print(f"{profile.name}: HBM {profile.memory_bandwidth_gbps:.0f} GB/s, L2 {profile.l2_cache_mib:g} MiB, vs {args.aic}\n")
    print(tabulate(rows, headers=["op class", "HBM-bound rows", "faster than HBM", "min measured / HBM bound",
                                  "that row"], maxcolwidths=[None] * 4 + [70]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
