"""TTFT signatures in the measured serving runs: which mechanism a TTFT gap follows.

    python benchmarks/serving_ttft_signature.py --data ../shared/serving/silicon_sample_visible.csv \
        [--rows rows.csv] [--simulate]

Prints, from the measured rows alone (no simulation):
- per (engine, model) of the AIConfigurator-eval agg rows on H100 (fixed lengths, isl 1k-4k,
  osl 128-512): the slope k of TTFT against decode_time / concurrency = osl x TPOT / c, fitted
  per (tp, quantization, isl, concurrency) over the rows' output lengths. k ~ 1 is the signature
  of a request that waits for the next completion in a closed loop of c clients (completions
  come every osl x TPOT / c); k ~ 0: TTFT does not depend on the output length.
With `--rows` (a per-row CSV of `serving_fidelity.py --out`): the median measured / simulated
TTFT and the median measured - simulated TTFT (ms) per engine x family x prompt length at
<= `--max-clients` clients (default 16: little queueing), over distinct measurements (the sample
holds some runs twice). A gap that stays at long prompts, where the step is GPU-bound, is not a
host-launch floor; a gap that differs by model at the same prompt length is not a front-end
constant. The rows of README "Serving accuracy" ("What is left"): `serving_fidelity.py
--sample 0 --modes agg --devices h100_sxm,b200_sxm --max-concurrency 8 --out low.csv`, then
`--rows low.csv --max-clients 8`.
With `--rows`, also the prefill slope split: per engine x device x family x precision, the runs of
one deployment (same deployment, clients, output length and MTP) measured at two or more prompt
lengths, at <= `--max-clients` clients; over those, the TTFT slope against the prompt length (us per
prompt token, least squares), measured and simulated, and the intercept (TTFT extrapolated to an empty
prompt), measured minus simulated. A slope ratio near 1 with a positive intercept gap is a constant per
request (front end, host time, a wait for steps); a slope ratio above 1 is prefill work costed too
cheaply per token (the kernels).
With `--rows` and `--step-split`: per deployment measured at the longest prompt (8k) at <= `--max-clients`
clients, measured minus simulated TTFT beside the simulated prefill step of one such prompt and its
op kinds (`analyze` on the row's deployment): a gap proportional to the step across tensor-parallel
sizes is kernel time, one that stays the same from one GPU to eight is not a kernel of the step as
costed (docs/serving_accuracy.md, "Eighteenth round").
With `--simulate`: the TensorRT-LLM Llama-3.1-8B H100 rows simulated as in serving_fidelity.py and
again with one running request fewer than the clients (max_num_seqs = c - 1): the what-if of a
request that waits for the next completion. It is not a default: the same engine version's
Qwen3 rows of the same source have k ~ 0 (see docs/serving_accuracy.md, the TensorRT-LLM `aic-eval` run-set artefact).
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fidelity_mapping as fm  # the row's concurrency
import serving_fidelity as sf  # the fidelity script's row mapping


def slope(xs: list[float], ys: list[float]) -> float:
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def completion_slopes(rows: list[dict[str, str]]) -> dict[tuple[str, str], list[float]]:
    groups: dict[tuple[Any, ...], dict[int, tuple[float, float]]] = defaultdict(dict)
    for r in rows:
        try:
            aic = sf.benchmark_source(r) == "aic-eval"
        except sf.Unsupported:
            continue
        if r["system"] != "h100_sxm" or r["mode"] != "agg" or not aic:
            continue
        key = (r["backend"], r["model_path"].split("/")[-1], r["tp_size"], r["gemm_quant_mode"], int(r["isl"]),
               fm.concurrency(r))
        groups[key][int(r["osl"])] = (float(r["silicon_ttft_ms"]), float(r["silicon_tpot_ms"]))
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for key, by_osl in groups.items():
        if len(by_osl) < 3:
            continue
        c = key[5]
        xs = [osl * tpot / c for osl, (_, tpot) in sorted(by_osl.items())]
        ys = [ttft for _, (ttft, _) in sorted(by_osl.items())]
        out[(key[0], key[1])].append(slope(xs, ys))
    return out


def few_client_rows(path: str, data: dict[str, dict[str, str]],
                    max_clients: int) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """(simulated row of a `serving_fidelity.py --out` CSV, its measured row) for every agg row at <=
    `max_clients` clients whose id `data` holds."""
    with open(path, newline="") as fh:
        for r in csv.DictReader(fh):
            if r["mode"] == "agg" and int(r["concurrency"]) <= max_clients and r["id"] in data:
                yield r, data[r["id"]]


def gap_by_prompt(path: str, data: dict[str, dict[str, str]], max_clients: int = 16) -> None:
    cells: dict[tuple[str, str, str, int], dict[tuple[Any, ...], tuple[float, float]]] = defaultdict(dict)
    for r, row in few_client_rows(path, data, max_clients):
        meas, pred = float(r["meas_ttft_s"]), float(r["pred_ttft_s"])
        # one entry per distinct measurement: the sample repeats some runs under other ids
        run = (row["tp_size"], row["precision"], row["osl"], r["concurrency"], r["deployment"], round(meas, 6))
        cells[(r["engine"], r["system"], r["family"], int(row["isl"]))][run] = (meas / pred, (meas - pred) * 1e3)
    print(f"\n| engine | device | family | isl | runs (<= {max_clients} clients) | median measured / simulated TTFT "
          "| median measured - simulated (ms) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for key in sorted(cells):
        ratios, gaps = zip(*cells[key].values())
        print(f"| {key[0]} | {key[1]} | {key[2]} | {key[3]} | {len(ratios)} | {statistics.median(ratios):.2f} "
              f"| {statistics.median(gaps):+.0f} |")


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares (slope, intercept) of ys against xs."""
    k = slope(xs, ys)
    return k, sum(ys) / len(ys) - k * sum(xs) / len(xs)


def prefill_slopes(path: str, data: dict[str, dict[str, str]],
                   max_clients: int = 16) -> dict[tuple[str, str, str, str], list[tuple[float, float, float]]]:
    """Per (engine, device, family, precision): one (measured slope, simulated slope, intercept gap)
    per deployment measured at two or more prompt lengths at <= `max_clients` clients. Slopes in
    seconds per prompt token; the gap is measured minus simulated TTFT at an empty prompt, seconds.
    Each prompt length of a deployment counts once (the sample repeats some runs under other ids)."""
    runs: dict[tuple[str, ...], dict[int, tuple[float, float]]] = defaultdict(dict)
    for r, row in few_client_rows(path, data, max_clients):
        key = (r["engine"], r["system"], r["family"], row["precision"], r["deployment"], r["concurrency"],
               row["osl"], r.get("mtp", ""))
        runs[key].setdefault(int(row["isl"]), (float(r["meas_ttft_s"]), float(r["pred_ttft_s"])))
    out: dict[tuple[str, str, str, str], list[tuple[float, float, float]]] = defaultdict(list)
    for deployment, by_isl in runs.items():
        if len(by_isl) < 2:
            continue
        isls = sorted(by_isl)
        k_meas, b_meas = fit_line([float(i) for i in isls], [by_isl[i][0] for i in isls])
        k_pred, b_pred = fit_line([float(i) for i in isls], [by_isl[i][1] for i in isls])
        engine, system, family, precision = deployment[:4]
        out[(engine, system, family, precision)].append((k_meas, k_pred, b_meas - b_pred))
    return out


def print_prefill_slopes(slopes: dict[tuple[str, str, str, str], list[tuple[float, float, float]]],
                         max_clients: int) -> None:
    print(f"\n| engine | device | family | precision | deployments (<= {max_clients} clients) | median measured "
          "slope (us / prompt token) | median simulated | median measured / simulated | median intercept gap (ms) |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for key in sorted(slopes):
        meas, pred, gap = zip(*slopes[key])
        ratios = [m / p for m, p in zip(meas, pred, strict=True) if p > 0]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        print(f"| {' | '.join(key)} | {len(meas)} | {statistics.median(meas) * 1e6:.1f} "
              f"| {statistics.median(pred) * 1e6:.1f} | {ratio} | {statistics.median(gap) * 1e3:+.0f} |")


STEP_KINDS = ("attention", "gemm", "moe", "collective", "quant")


def prefill_step_kinds(row: dict[str, str], isl: int) -> tuple[float, dict[str, float]]:
    """The simulated prefill step of one `isl`-token prompt on the row's deployment: (seconds, seconds by
    op kind), from `analyze` with the fidelity script's mapping."""
    import tensor_cast

    kwargs = sf.setup(row, isl=isl)
    for key in ("engine_args", "mtp", "disagg"):
        kwargs.pop(key, None)
    report = tensor_cast.analyze(batch_size=1, query_len=isl, context_len=0, **kwargs)
    kinds: dict[str, float] = defaultdict(float)
    for op in report.ops:
        kinds[op.kind] += op.time_s
    return report.total_time_s, kinds


def step_split(path: str, data: dict[str, dict[str, str]], max_clients: int = 16, step_kinds: Any = None,
               isl: int = 8192) -> list[tuple[Any, ...]]:
    """(engine, device, family, precision, deployment, measured - simulated TTFT s, simulated step s, its
    kinds) for each deployment measured at `isl`-token prompts at <= `max_clients` clients, once per
    (deployment, clients); the step of the simulated centre length (sa-bench draws [0.8 L, L])."""
    step_kinds = step_kinds or prefill_step_kinds
    seen: set[tuple[str, ...]] = set()
    out = []
    for r, row in few_client_rows(path, data, max_clients):
        key = (r["engine"], r["system"], r["family"], row["precision"], r["deployment"], r["concurrency"])
        if int(row["isl"]) != isl or key in seen:
            continue
        seen.add(key)
        step_s, kinds = step_kinds(row, round(0.9 * isl))
        out.append((*key[:5], float(r["meas_ttft_s"]) - float(r["pred_ttft_s"]), step_s, kinds))
    return sorted(out, key=lambda o: o[:5])


def print_step_split(rows: list[tuple[Any, ...]]) -> None:
    print("\n| engine | device | family | precision | deployment | measured - simulated TTFT (ms) | simulated "
          f"8k step (ms) | {' | '.join(STEP_KINDS)} (ms) |")
    print("| --- | --- | --- | --- | --- | ---: | ---: |" + " ---: |" * len(STEP_KINDS))
    for *key, gap, step, kinds in rows:
        print(f"| {' | '.join(key)} | {gap * 1e3:+.0f} | {step * 1e3:.0f} | "
              + " | ".join(f"{kinds.get(k, 0.0) * 1e3:.0f}" for k in STEP_KINDS) + " |")


def simulate_slots(rows: list[dict[str, str]]) -> None:
    import tensor_cast

    chosen = [r for r in rows if r["system"] == "h100_sxm" and r["backend"] == "trtllm" and r["mode"] == "agg"
              and r["model_path"].endswith("Llama-3.1-8B-Instruct") and fm.concurrency(r) <= 32]
    errs: dict[str, list[float]] = defaultdict(list)
    print("\n| tp | isl | osl | clients | measured TTFT ms | simulated | simulated, c - 1 running |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in sorted(chosen, key=lambda r: (int(r["tp_size"]), int(r["isl"]), fm.concurrency(r), int(r["osl"]))):
        isl, osl, ratio = sf.lengths(r, None)
        c = sf.per_replica_concurrency(r)
        meas = float(r["silicon_ttft_ms"]) / 1e3
        got = []
        for label, seqs in (("default", None), ("c - 1", c - 1)):
            kwargs = sf.setup(r, ratio, isl=isl)
            if seqs:
                kwargs.setdefault("engine_args", {})["max_num_seqs"] = seqs
            rep = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * 10, isl=isl, osl=osl,
                                       range_ratio=ratio)
            got.append(rep.mean_ttft_s)
            errs[label].append(abs(rep.mean_ttft_s - meas) / meas)
        print(f"| {r['tp_size']} | {isl} | {osl} | {c} | {meas * 1e3:.0f} | {got[0] * 1e3:.0f} | {got[1] * 1e3:.0f} |")
    for label, e in errs.items():
        print(f"TTFT MAE, {label}: {100 * sum(e) / len(e):.1f}% over {len(e)} rows")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", help="per-row CSV written by serving_fidelity.py --out")
    ap.add_argument("--max-clients", type=int, default=16, help="--rows: only rows of at most this many clients")
    ap.add_argument("--step-split", action="store_true",
                    help="--rows: the 8k-prompt gap beside the simulated prefill step and its op kinds (analyze)")
    ap.add_argument("--simulate", action="store_true", help="simulate the TRT-LLM Llama-3.1-8B rows with c - 1 slots")
    args = ap.parse_args()
    with open(args.data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    print("| engine | model | (tp, quant, isl, clients) groups | median k | quartiles |")
    print("| --- | --- | ---: | ---: | --- |")
    for (engine, model), ks in sorted(completion_slopes(rows).items()):
        q = statistics.quantiles(ks, n=4) if len(ks) > 1 else ks * 3
        print(f"| {engine} | {model} | {len(ks)} | {statistics.median(ks):.2f} | {q[0]:.2f} .. {q[2]:.2f} |")
    if args.rows:
        by_id = {r["id"]: r for r in rows}
        gap_by_prompt(args.rows, by_id, args.max_clients)
        print_prefill_slopes(prefill_slopes(args.rows, by_id, args.max_clients), args.max_clients)
        if args.step_split:
            print_step_split(step_split(args.rows, by_id, args.max_clients))
    if args.simulate:
        simulate_slots(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
