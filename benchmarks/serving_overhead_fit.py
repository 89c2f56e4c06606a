"""Fit the serving engines' per-step and per-sequence overheads on a TRAINING split of measured runs.

    python benchmarks/serving_overhead_fit.py --data ../shared/serving/silicon_sample_visible.csv \
        [--per-group 10] [--range-ratio R]

What is fitted, per engine: `EngineProfile.step_overhead_s` (a) and `seq_overhead_s` (b), the
time a step spends beyond its kernels — host work the engines' overlap schedulers do not hide,
sampling and logits processing over the vocabulary, output handling — which tensor_cast's traced
forward graph does not contain. engines.py ("Overheads") says what each engine does there.
`request_overhead_s` (the front end, 10 ms) is not fitted here: it is vLLM's measurement of the
client's TTFT minus the server's (engines.py "Overheads"), checked on this split's TTFT by a grid
(README "Serving accuracy"); it delays arrivals, not steps, so the TPOT fitted here does not see it.

Training split: agg rows on h100_sxm of the dense model families (Llama, Qwen3-dense). Those are
the rows whose step cost rests on the H100 kernel calibration (one step within a few % of the
measured steps), so their TPOT residual is overhead rather than kernel error; every MoE row, every
disagg row and every B200 row is held out (`serving_fidelity.py` labels rows `fit` / `held-out`
and reports the two apart). `--per-group N` rows per engine x family, spread over the group.

Every fit row runs with its overhead added to each step (`host_overlap` off: vLLM rows of releases
before async scheduling was the default, `serving_fidelity.vllm_scheduling`; SGLang and TensorRT-LLM
always), so the TPOT is linear in a and b; a row whose engine overlaps the overhead is refused.

Method: each row is simulated as `serving_fidelity.py` does (closed loop of the measured
concurrency, 10 requests per client, its benchmark client's lengths) with overheads (a, b) = (0, 0), (a0, 0) and (0, b0): the TPOT
changes give the row's sensitivity to a and b (linear: an overhead adds to every step of the
same schedule). Per engine, a >= 0 and b >= 0 minimise the summed squared relative TPOT error
(two-variable non-negative least squares). A last simulation at (a, b) per row gives the table: TPOT / TTFT mean absolute error on these fitted-on rows before (no
overheads) and after. These are fitted-and-checked-on-same-data numbers; held-out numbers come
from `serving_fidelity.py`.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serving_fidelity import (
    FIT_FAMILIES,
    FIT_SYSTEMS,
    Unsupported,
    family,
    lengths,
    per_replica_concurrency,
    setup,
)

A0 = 1e-3  # probe: 1 ms per step
B0 = 20e-6  # probe: 20 us per sequence


def simulate(row: dict[str, str], args: argparse.Namespace, a: float, b: float) -> tuple[float, float]:
    import tensor_cast
    from tensor_cast.serving.engines import engine_profile

    isl, osl, ratio = lengths(row, args.range_ratio)
    kwargs = setup(row, ratio, overhead=False, isl=isl)
    kwargs["engine_args"] = {**kwargs.get("engine_args", {}), "step_overhead_s": a, "seq_overhead_s": b}
    if engine_profile(row["backend"], kwargs["engine_args"]).host_overlap:  # max(kernels, overhead): not linear
        raise Unsupported(f"{row['id']}: the engine hides its overhead behind the kernels (host_overlap), which "
                          "the linear fit cannot take; the fit rows are vLLM releases before async scheduling")
    if args.allreduce_fusion != "auto":
        kwargs["engine_args"]["allreduce_fusion"] = args.allreduce_fusion == "on"
    c = per_replica_concurrency(row)
    report = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * args.requests_per_client,
                                  isl=isl, osl=osl, range_ratio=ratio)
    return report.mean_tpot_s, report.mean_ttft_s


def nnls2(p0: list[float], sa: list[float], sb: list[float], m: list[float]) -> tuple[float, float]:
    """a, b >= 0 minimising sum(((p0 + a sa + b sb) - m) / m)^2."""
    import numpy as np

    x = np.array([[sa[i] / m[i], sb[i] / m[i]] for i in range(len(m))])
    y = np.array([(m[i] - p0[i]) / m[i] for i in range(len(m))])
    best: tuple[float, float, float] | None = None
    candidates = []
    sol = np.linalg.lstsq(x, y, rcond=None)[0]
    if (sol >= 0).all():
        candidates.append((float(sol[0]), float(sol[1])))
    for j in (0, 1):  # one variable at zero
        col = x[:, j]
        v = max(0.0, float(col @ y / (col @ col))) if col @ col > 0 else 0.0
        candidates.append((v, 0.0) if j == 0 else (0.0, v))
    candidates.append((0.0, 0.0))
    for a, b in candidates:
        loss = float(((x @ np.array([a, b]) - y) ** 2).sum())
        if best is None or loss < best[2]:
            best = (a, b, loss)
    assert best is not None
    return best[0], best[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--per-group", type=int, default=10, help="training rows per engine x family")
    ap.add_argument("--requests-per-client", type=int, default=10)
    ap.add_argument("--range-ratio", type=float, default=None, help="default: per benchmark source and engine, as serving_fidelity.py")
    ap.add_argument("--engines", default="vllm,sglang,trtllm", help="engines to fit (comma-separated)")
    ap.add_argument("--allreduce-fusion", choices=("auto", "on", "off"), default="auto",
                    help="TP all-reduce + residual add + RMSNorm fused: auto = each engine's default")
    args = ap.parse_args()
    from tensor_cast.errors import TensorCastError

    with open(args.data, newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["mode"] == "agg" and r["system"] in FIT_SYSTEMS
                and family(r["model_path"]) in FIT_FAMILIES and r["backend"] in args.engines.split(",")]
    groups: dict[tuple[str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["backend"], family(r["model_path"]))].append(r)
    train = []
    for _, members in sorted(groups.items()):
        step = max(1, len(members) // args.per_group)
        train += members[step // 2::step][: args.per_group]
    start = time.time()
    data: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for i, row in enumerate(train):
        try:
            p0, t0 = simulate(row, args, 0.0, 0.0)
            pa, _ = simulate(row, args, A0, 0.0)
            pb, _ = simulate(row, args, 0.0, B0)
        except (Unsupported, TensorCastError) as exc:
            print(f"skipped {row['id']}: {exc}")
            continue
        data[row["backend"]].append({"row": row, "p0": p0, "t0": t0, "sa": (pa - p0) / A0, "sb": (pb - p0) / B0,
                                     "m": float(row["silicon_tpot_ms"]) / 1e3,
                                     "mt": float(row["silicon_ttft_ms"]) / 1e3})
        sys.stderr.write(f"{i + 1}/{len(train)} rows, {time.time() - start:.0f} s\n")
    print(f"training split: agg rows of {', '.join(FIT_FAMILIES)} on {', '.join(FIT_SYSTEMS)}, "
          f"{args.per_group} per engine x family, range ratio {args.range_ratio if args.range_ratio is not None else 'per engine'}\n")
    print("| engine | rows | step_overhead_s | seq_overhead_s | TPOT MAE before | "
          "TPOT MAE after | TTFT MAE before | TTFT MAE after |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for engine, items in sorted(data.items()):
        a, b = nnls2([d["p0"] for d in items], [d["sa"] for d in items], [d["sb"] for d in items],
                     [d["m"] for d in items])
        after = [simulate(d["row"], args, a, b) for d in items]
        tb = sum(abs(d["p0"] - d["m"]) / d["m"] for d in items) / len(items)
        ta = sum(abs(p - d["m"]) / d["m"] for d, (p, _) in zip(items, after, strict=True)) / len(items)
        fb = sum(abs(d["t0"] - d["mt"]) / d["mt"] for d in items) / len(items)
        fa = sum(abs(t - d["mt"]) / d["mt"] for d, (_, t) in zip(items, after, strict=True)) / len(items)
        print(f"| {engine} | {len(items)} | {a:.3e} | {b:.3e} | {100 * tb:.1f}% | {100 * ta:.1f}% | "
              f"{100 * fb:.1f}% | {100 * fa:.1f}% |")
    print(f"\n{time.time() - start:.0f} s (fitted-on rows only: held-out errors are serving_fidelity.py's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
