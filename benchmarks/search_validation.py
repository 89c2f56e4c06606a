"""Does the search rank configurations as the measured runs do?

    python benchmarks/search_validation.py --data ../shared/serving/silicon_sample_visible.csv \
        [--min-configs 5] [--per-model K | --max-groups N] [--out groups.csv]

Rows of the measured serving runs are grouped by (model, device, engine, ISL, OSL); every group
with at least `--min-configs` configurations that map to a tensor_cast deployment (the mapping of
`benchmarks/serving_fidelity.py`: same models, parallelism, quantization, engine knobs) is
simulated row by row with `tensor_cast.simulate` (closed loop at the measured concurrency).

Throughput per GPU, measured: concurrency x OSL / (TTFT + (OSL - 1) x TPOT) / GPUs (a closed
loop's steady state from the measured means); predicted: the simulator's output tokens/s per GPU.
Per group: Spearman rho of the two rankings, and whether the configuration predicted best
reaches >= 90% of the measured best throughput ("best within 10%"; the predicted value of that
configuration vs its measured value is printed beside it). Prints the per-group table and the
median rho / share of groups within 10%.

A group whose rows share one deployment and differ only in concurrency is ranked by concurrency
alone (throughput rises with it), an easier test: the "deployments" column counts each group's
distinct (parallelism, quantization) and the summary repeats the medians over groups with more
than one.

Sampling (`--per-model K`): every group is worth having but each (model, parallelism,
quantization) needs its own trace, so at most K groups per model are taken, greedily the ones that
need the fewest traces not already needed (groups of one model on one device share most of theirs
across ISL / OSL and engines). The output says how many groups of how many were taken.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any


def _fidelity_modules() -> tuple[Any, Any]:
    """serving_fidelity (its row `setup`) and fidelity_mapping (the row's `concurrency`, `_int`), from this folder."""
    path = Path(__file__).with_name("serving_fidelity.py")
    spec = importlib.util.spec_from_file_location("serving_fidelity", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # puts this folder on sys.path, where fidelity_mapping lives
    return module, importlib.import_module("fidelity_mapping")


def gpus(row: dict[str, str], m: Any) -> int:
    if row["mode"] == "disagg":
        return sum(m._int(row[f"{r}_num_workers"]) * m._int(row[f"{r}_tp_size"]) * m._int(row[f"{r}_attention_dp_size"])
                   * m._int(row[f"{r}_pp_size"]) for r in ("prefill", "decode"))
    return m._int(row["tp_size"]) * m._int(row["attention_dp_size"]) * m._int(row["pp_size"])


def measured_per_gpu(row: dict[str, str], m: Any) -> float:
    c, osl = m.concurrency(row), int(row["osl"])
    ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
    return c * osl / (ttft + (osl - 1) * tpot) / gpus(row, m)


def trace_keys(setups: list[dict[str, Any]]) -> set[tuple[Any, ...]]:
    """What needs a trace of its own: the model and everything but the device and engine."""
    return {(s["model"], tuple(sorted((k, str(v)) for k, v in s.items() if k not in ("model", "device", "engine",
                                                                               "engine_args"))))
            for s in setups}


def sample(groups: dict[tuple[str, ...], list[tuple[dict[str, str], dict[str, Any]]]],
           chosen: list[tuple[str, ...]], per_model: int) -> list[tuple[str, ...]]:
    """At most `per_model` groups per model, fewest new traces first (ties: most configurations)."""
    needed: set[tuple[Any, ...]] = set()
    out = []
    for model in sorted({k[0] for k in chosen}):
        left = [k for k in chosen if k[0] == model]
        for _ in range(min(per_model, len(left))):
            best = min(left, key=lambda k: (len(trace_keys([s for _, s in groups[k]]) - needed), -len(groups[k]), k))
            left.remove(best)
            needed |= trace_keys([s for _, s in groups[best]])
            out.append(best)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--min-configs", type=int, default=5)
    ap.add_argument("--max-groups", type=int, default=0, help="at most N groups, the largest (0: all)")
    ap.add_argument("--per-model", type=int, default=0, help="at most K groups per model (0: all; see the docstring)")
    ap.add_argument("--requests-per-client", type=int, default=4)
    ap.add_argument("--cheapest-first", action="store_true",
                    help="simulate the groups in order of their output tokens (concurrency x OSL summed over rows)")
    ap.add_argument("--out", help="per-group CSV, written group by group")
    ap.add_argument("--resume", action="store_true",
                    help="keep the groups already in --out (same columns), simulate only the others")
    args = ap.parse_args()
    if args.resume and not args.out:
        ap.error("--resume needs --out (the CSV of the groups already done)")
    f, m = _fidelity_modules()
    from scipy.stats import spearmanr
    from tabulate import tabulate

    import tensor_cast
    from tensor_cast.errors import TensorCastError

    groups: dict[tuple[str, ...], list[tuple[dict[str, str], dict[str, Any]]]] = defaultdict(list)
    with open(args.data) as handle:
        for row in csv.DictReader(handle):
            try:
                setup = f.setup(row)
            except (f.Unsupported, TensorCastError):  # e.g. a disagg pool whose tp does not divide the heads
                continue
            key: tuple[str, ...] = (row["model_path"], row["system"], row["backend"], row["isl"], row["osl"])
            groups[key].append((row, setup))
    chosen: list[tuple[str, ...]] = sorted((k for k, v in groups.items() if len(v) >= args.min_configs), key=lambda k: -len(groups[k]))
    eligible = len(chosen)
    if args.per_model:
        chosen = sample(groups, chosen, args.per_model)
    if args.max_groups:
        chosen = chosen[: args.max_groups]
    if args.cheapest_first:  # by simulated output tokens (the simulation's work), so coverage comes first
        chosen.sort(key=lambda k: sum(m.concurrency(r) * int(r["osl"]) for r, _ in groups[k]))
    print(f"{len(chosen)} of {eligible} groups with >= {args.min_configs} mapped configurations "
          f"({sum(len(groups[k]) for k in chosen)} rows, {len(trace_keys([s for k in chosen for _, s in groups[k]]))} "
          "traces)", file=sys.stderr)
    head = ("model", "system", "engine", "ISL", "OSL", "configs", "deployments", "Spearman rho",
            "measured(pred. best) / measured best", "pred. best tok/s/GPU", "its measured", "measured best")
    table: list[tuple[Any, ...]] = []
    done: set[tuple[str, ...]] = set()
    if args.resume and Path(args.out).exists():
        with open(args.out, newline="") as handle:
            old = list(csv.reader(handle))
        if not old or tuple(old[0]) != head:
            ap.error(f"--resume: {args.out} does not have this script's columns; remove it or drop --resume")
        table = [tuple(r) for r in old[1:] if tuple(r[:5]) in set(chosen)]
        done = {tuple(r[:5]) for r in table}
        print(f"resuming: {len(done)} groups already in {args.out}", file=sys.stderr)
    if args.out:
        with open(args.out, "w", newline="") as handle:
            csv.writer(handle).writerows([head, *table])
    started = time.perf_counter()
    for n, key in enumerate(chosen, 1):
        if key in done:
            continue
        measured, predicted = [], []
        for row, setup in groups[key]:
            kwargs = dict(setup)
            model = kwargs.pop("model")
            c = m.concurrency(row)
            try:
                report = tensor_cast.simulate(model, concurrency=c, num_requests=max(16, args.requests_per_client * c),
                                              isl=int(row["isl"]), osl=int(row["osl"]), **kwargs)
            except TensorCastError as exc:
                print(f"  skipped {row['id']}: {exc}", file=sys.stderr)
                continue
            measured.append(measured_per_gpu(row, m))
            predicted.append(report.output_tokens_per_s / gpus(row, m))
        if len(measured) < args.min_configs:
            continue
        rho = float(spearmanr(predicted, measured).statistic)
        best_pred = max(range(len(predicted)), key=predicted.__getitem__)
        ratio = measured[best_pred] / max(measured)
        layouts = len(trace_keys([s for _, s in groups[key]]))
        line = (*key, len(measured), layouts, f"{rho:.2f}", f"{ratio:.2f}", f"{predicted[best_pred]:.0f}",
                f"{measured[best_pred]:.0f}", f"{max(measured):.0f}")
        table.append(line)
        if args.out:
            with open(args.out, "a", newline="") as handle:
                csv.writer(handle).writerow(line)
        print(f"[{n}/{len(chosen)}] {key}: rho {rho:.2f}, best {ratio:.2f} ({time.perf_counter() - started:.0f} s)",
              file=sys.stderr)
    rhos = [float(r[7]) for r in table]
    within = [float(r[8]) >= 0.9 for r in table]
    spread = [int(r[6]) > 1 for r in table]
    print(tabulate(table, headers=head, disable_numparse=True, tablefmt="github"))
    if rhos:
        print(f"\n{len(rhos)} groups (of {eligible} with >= {args.min_configs} mapped configurations): median Spearman rho {statistics.median(rhos):.2f}; predicted best within 10% "
              f"of the measured best in {sum(within)}/{len(within)} ({100 * sum(within) / len(within):.0f}%)")
        # groups whose configurations differ only in concurrency rank by it: say how the others fare
        mixed = [i for i, m in enumerate(spread) if m]
        if mixed:
            print(f"{len(mixed)} of them with more than one deployment (parallelism / quantization), not only "
                  f"concurrency: median rho {statistics.median(rhos[i] for i in mixed):.2f}; best within 10% in "
                  f"{sum(within[i] for i in mixed)}/{len(mixed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
