"""Serving fidelity: simulated TTFT / TPOT vs measured serving runs (AIConfigurator silicon sample).

    python benchmarks/serving_fidelity.py --data ../shared/serving/silicon_sample_visible.csv \
        [--sample N] [--devices h100_sxm,b200_sxm,b300_sxm,gb200,gb300] [--out rows.csv]
        [--exclude earlier.csv ...]   (a fresh sample: leave out rows an earlier run simulated, and their twins)
        [--distinct --skipped-out skipped.csv]   (every measured run once; the rows not simulated, with the reason)

Every agg and disagg row on a system with a tensor_cast device profile is mapped to a
deployment and simulated as the benchmark ran it: a closed loop of `silicon_concurrency`
clients (all starting together), fixed isl/osl, `--requests-per-client` requests each. Rows
that cannot be mapped are listed with the reason. Prints a markdown table of mean absolute
relative error of TTFT and TPOT per device x engine x model family, with coverage.

How a row becomes a deployment (decided from the CSV's README and the engines' launch flags) is specified
clause by clause in the docstrings of the modules that implement it: `fidelity_mapping.py` (system, model,
parallelism, quantization, replicas, agg MTP), `fidelity_engine_flags.py` (the engine's defaults and launch
flags), `fidelity_disagg.py` (a disagg row's pools, worker counts, MTP and concurrency); `setup` below
composes them into `simulate`'s keywords. Which rows a run takes (twins, id files) is `fidelity_rows.py`'s;
the recipe and launch-flags tables under `benchmarks/data/` are read by `inferencemax_flags.py` and
`sglang_recipe_tables.py`; `serving_fidelity_summary.py` turns the --out CSVs into the README's tables. This
file owns how a mapped row is run and scored:

- protocol: closed loop, all clients start together, `--requests-per-client` requests each
  (default 10). Which benchmark client measured a row follows from its `silicon_data_source`
  (`benchmark_source`), and the two clients differ in the lengths they send:
  - `sa-bench` (3,548 rows: `source_file=<date>.csv`, `db-dump/...; workflow_run_id=...`,
    `*-gap-analysis.csv`; the InferenceMAX grid: isl/osl 1k/1k, 1k/8k, 8k/1k, concurrency 4-256,
    public engine images): SemiAnalysis' benchmark_serving run with `--num-prompts CONC*10
    --max-concurrency CONC --random-range-ratio 0.8`, and that client draws every prompt and
    output length uniformly in [0.8 L, L] (the older vLLM benchmark_serving convention: lower
    bound int(L * ratio)). Simulated as lengths centred on 0.9 L with range ratio 1/9, i.e.
    [0.8 L, L] (to the token); the clients desynchronize by themselves.
  - `aic-eval` (706 rows: `aic-auto-gap-analysis`, Dynamo runtime images; isl 1k-4k, osl
    128-512): AIConfigurator's own eval runners — genai-perf / AIPerf with
    `--synthetic-input-tokens-stddev 0 --output-tokens-stddev 0 ignore_eos`, `--request-count
    v*10`, `--warmup-request-count v*2` (eval/benchmarks/genai_perf_runner.py; AIPerf waits for
    every warm-up response before the measured phase, so that phase again starts with all clients
    at once and its first wave counts). Fixed lengths; a closed loop of fixed lengths runs in
    lock-step waves, which the SGLang and TensorRT-LLM rows of this source show (TTFT of a
    wave's prefill) and the vLLM rows do not (their clients desynchronize), so a small length
    jitter stands for the run's timing noise: lengths in [L(1-r), L(1+r)] with r per engine
    (`LENGTH_JITTER`: 0 for SGLang and TensorRT-LLM, 0.1 for vLLM, chosen between 0 and 0.1 on the
    overhead fit's split with overheads off, when every row was simulated this way).
  `--range-ratio r` simulates every row with lengths in [L(1-r), L(1+r)] instead; `--warmup`
  leaves the first wave (one request per client) out of the latency statistics (neither client
  does that, see above).
- overhead: the engines' per-step and per-sequence overheads (engines.py; fitted by
  `benchmarks/serving_overhead_fit.py` on H100 dense-model agg rows only). `--overhead none`
  zeroes them (the simulator before they existed; the 10 ms front end, `request_overhead_s`, stays:
  a measurement, not fitted). Every result row says whether it belongs to
  that fit's population (`split` = fit) or not (held-out), and the table reports the two apart.
- kernels: `--kernels torch` costs every step with the device profile's `torch` section (the
  PyTorch-harness fit) instead of the serving engine's own (`simulate(kernels=...)`): the
  comparison issue 10 asks for (run both with `--overhead none`, since the overheads were
  fitted on the engine sections).
- samples: `--sample N` takes at most N rows per device x engine x family; `--ids FILE` only the rows
  a file names and `--exclude FILE ...` every row but those and their twins (both read by `read_ids`:
  an --out CSV's id column or one id per line) — e.g. a fresh sample beside a development one.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from collections import defaultdict
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from fidelity_disagg import (  # a disagg row's pools, workers
    disagg_deployment,
    disagg_mtp_sources,
    disagg_source,
)
from fidelity_engine_flags import (  # the engine's flags
    engine_defaults,
    inferencemax_flags,
    trtllm_adp_balance,
)
from fidelity_mapping import (  # the row -> deployment mapping
    MODELS,
    SYSTEMS,
    Unsupported,
    _measured_clients,
    agg_mtp,
    agg_mtp_sources,
    benchmark_source,
    family,
    nvfp4_deepseek_bf16,
    parallel,
    per_replica_concurrency,
    quant,
)
from fidelity_rows import distinct, excluded, read_ids  # which measured rows a run takes (twins, id files)

FIT_SYSTEMS = ("h100_sxm",)  # the overhead fit's population: H100 agg rows of dense models
FIT_FAMILIES = ("Llama", "Qwen3-dense")
LENGTH_JITTER = {"sglang": 0.0, "trtllm": 0.0, "vllm": 0.1}  # chosen on the fit split (docstring)
ZERO_OVERHEAD = {"step_overhead_s": 0.0, "seq_overhead_s": 0.0}
SA_BENCH_RATIO = 0.8  # sa-bench --random-range-ratio: lengths uniform in [0.8 L, L]


def split(row: dict[str, str]) -> str:
    """`fit` for a row of the overhead fit's population, else `held-out`."""
    fit = row["mode"] == "agg" and row["system"] in FIT_SYSTEMS and family(row["model_path"]) in FIT_FAMILIES
    return "fit" if fit else "held-out"


def lengths(row: dict[str, str], override: float | None) -> tuple[int, int, float]:
    """(isl, osl, range ratio) to simulate: lengths uniform in [L(1-r), L(1+r)] around them."""
    isl, osl = int(row["isl"]), int(row["osl"])
    if override is not None:
        return isl, osl, override
    if benchmark_source(row) == "sa-bench":  # [0.8 L, L] = centre 0.9 L, half-width 0.1 L = 1/9 of it
        centre = (1 + SA_BENCH_RATIO) / 2
        return round(isl * centre), round(osl * centre), (1 - SA_BENCH_RATIO) / (1 + SA_BENCH_RATIO)
    return isl, osl, LENGTH_JITTER[row["backend"]]


def setup(row: dict[str, str], range_ratio: float = 0.0, overhead: bool = True, isl: int | None = None,
          host_launch_s: float | None = None, mtp_source: str | None = None) -> dict[str, Any]:
    if row["system"] not in SYSTEMS:
        raise Unsupported(f"no device profile for {row['system']}")
    if row["model_path"] not in MODELS:
        raise Unsupported(f"model {row['model_path']} not in the registry")
    model, forced = MODELS[row["model_path"]]
    kwargs: dict[str, Any] = {"device": SYSTEMS[row["system"]], "engine": row["backend"],
                              **quant(row, row["model_path"], forced)}
    engine_args: dict[str, Any] = {} if overhead else dict(ZERO_OVERHEAD)
    if host_launch_s is not None:  # what-if: one host time per eager launch for every engine (0: off)
        engine_args["eager_launch_host_s"] = host_launch_s
    engine_args.update(engine_defaults(row, range_ratio, isl))
    if engine_args:
        kwargs["engine_args"] = engine_args
    if row["mode"] == "disagg":
        kwargs["disagg"], mtp = disagg_deployment(row, mtp_source)
        if mtp:
            kwargs["mtp"] = mtp
    else:
        kwargs.update(parallel(row))
        if drafts := agg_mtp(row, kwargs, mtp_source):
            kwargs["mtp"] = drafts
        flags = inferencemax_flags(row, mtp=mtp_source == "MTP")
        if flags is None:  # no InferenceMAX entry (other systems, AIConfigurator's runs)
            flags = trtllm_adp_balance(row, kwargs), {}
        args, extra = flags
        if host_launch_s is not None:  # the what-if wins over a script's piecewise graphs
            args.pop("eager_launch_host_s", None)
        if args:
            kwargs["engine_args"] = {**kwargs.get("engine_args", {}), **args}
        kwargs.update(extra)
    kwargs.update(nvfp4_deepseek_bf16(row, kwargs))  # after the MTP draft count: it keeps the MTP layer bf16
    return {"model": model, **kwargs}


def group_label(r: dict[str, Any]) -> str:
    if r["mode"] == "disagg":
        return "disagg, workers given" if r["workers"] == "given" else f"disagg, {r['workers']}"
    return f"agg, {r['split']}" + (", MTP unknown" if r.get("mtp_source") == "MTP unknown" else "")


def mae(rows: list[dict[str, Any]], key: str) -> str:
    return f"{100 * sum(r[key] for r in rows) / len(rows):.1f}%" if rows else "-"


INTERNAL_ERROR = "internal error (a defect): "
SKIPPED_FIELDS = ["id", "system", "engine", "mode", "family", "reason"]


def skipped_row(row: dict[str, str], reason: str) -> dict[str, str]:
    """A --skipped-out line: the row's group and why it was not simulated."""
    return {"id": row["id"], "system": row["system"], "engine": row["backend"], "mode": row["mode"],
            "family": family(row["model_path"]), "reason": reason}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--sample", type=int, default=0, help="at most N rows per device x engine x family (0: all)")
    ap.add_argument("--requests-per-client", type=int, default=10)
    ap.add_argument("--warmup", action="store_true", help="leave the first request of every client out")
    ap.add_argument("--range-ratio", type=float, default=None,
                    help="simulate lengths uniform in [L(1-r), L(1+r)] (desynchronizes the closed loop); "
                         "default per engine (LENGTH_JITTER)")
    ap.add_argument("--devices", default=",".join(SYSTEMS))
    ap.add_argument("--engines", default="vllm,sglang,trtllm")
    ap.add_argument("--families", default="", help="comma-separated families (default: all)")
    ap.add_argument("--modes", default="agg,disagg")
    ap.add_argument("--overhead", choices=("profile", "none"), default="profile",
                    help="engine per-step/per-sequence overheads: the profiles' (fitted) or none")
    ap.add_argument("--kernels", default=None, choices=("vllm", "sglang", "trtllm", "torch"),
                    help="device-profile efficiency section for step costs (default: each row's engine)")
    ap.add_argument("--host-launch-us", type=float, default=None,
                    help="what-if: host time per kernel launch of steps run without CUDA graphs, for every "
                         "engine (eager_launch_host_s; 0 turns the floor off; default: each engine's own)")
    ap.add_argument("--moe-skew", type=float, default=0.0,
                    help="what-if: Zipf skew of MoE expert popularity in every step (analyze's moe_skew; 0: uniform "
                         "random routing, the default)")
    ap.add_argument("--mtp-acceptance", type=float, default=None,
                    help="what-if: per-draft MTP acceptance of every MTP row (simulate's mtp_acceptance; default "
                         "tensor_cast's DEFAULT_ACCEPTANCE, 0.85: no public figure for DeepSeek-R1 on sa-bench's random "
                         "prompts, docs/serving_accuracy.md 'MTP acceptance')")
    ap.add_argument("--no-agg-mtp", action="store_true",
                    help="simulate every agg row without MTP (ignore the DeepSeek B200 MTP twins: fidelity_mapping.py, agg MTP)")
    ap.add_argument("--no-disagg-mtp", action="store_true",
                    help="simulate every disagg row whose recipes are MTP twins without MTP (ignore its TPOT level: "
                         "fidelity_disagg.py, disagg MTP levels)")
    ap.add_argument("--allreduce-fusion", choices=("auto", "on", "off"), default="auto",
                    help="TP all-reduce + residual add + RMSNorm fused (engine knob allreduce_fusion): auto = each "
                         "engine's default and the launch flags; on / off for every row (what-if)")
    ap.add_argument("--kv-cache-dtype", choices=("bf16", "fp8"), default=None,
                    help="what-if: this KV cache dtype for every row (default: each row's mapping, fidelity_mapping.py)")
    ap.add_argument("--out", help="per-row CSV of predictions (written as rows finish)")
    ap.add_argument("--ids", help="only these row ids: a file with one id per line or an --out CSV (e.g. the "
                                  "rows a mapping change newly covers)")
    ap.add_argument("--exclude", nargs="+", default=[],
                    help="leave out these rows and their twins (the same measured TTFT and TPOT under another id): "
                         "files of ids, one per line, or --out CSVs (their id column); e.g. the development sample's "
                         "--out CSVs, to draw a fresh sample of rows no modelling change was checked on")
    ap.add_argument("--distinct", action="store_true",
                    help="one row per measured run: twins (the same measured TTFT and TPOT under another id) are "
                         "simulated once, under the first id in the file")
    ap.add_argument("--skipped-out",
                    help="CSV of the rows not simulated, with the reason (written as rows finish): the coverage "
                         "serving_fidelity_summary.py --skipped reports")
    ap.add_argument("--max-concurrency", type=int, default=0,
                    help="only rows measured at most this many clients (silicon_concurrency; 0: all; the others are "
                         "listed as not run): the little-queueing rows serving_ttft_signature.py --rows reads, or a "
                         "full run without the largest closed loops (10 requests x 16,384 clients take minutes)")
    args = ap.parse_args()

    import tensor_cast
    from tensor_cast.errors import TensorCastError

    wanted = read_ids(args.ids) if args.ids else None
    with open(args.data, newline="") as fh:
        every = list(csv.DictReader(fh))
    left_out = excluded(every, args.exclude)
    mtp_sources = {} if args.no_agg_mtp else agg_mtp_sources(every)
    if not args.no_disagg_mtp:
        mtp_sources.update(disagg_mtp_sources(every))
    if args.distinct:
        every = distinct(every)
    rows = [r for r in every if r["system"] in args.devices.split(",")
            and (wanted is None or r["id"] in wanted) and r["id"] not in left_out
            and r["mode"] in args.modes.split(",") and r["backend"] in args.engines.split(",")
            and (not args.families or family(r["model_path"]) in args.families.split(","))]
    groups: dict[tuple[str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        groups[(r["system"], r["backend"], family(r["model_path"]))].append(r)
    if args.sample:
        for key, members in groups.items():
            step = max(1, len(members) // args.sample)
            groups[key] = members[::step][: args.sample]
    results: list[dict[str, Any]] = []
    skipped: dict[str, list[str]] = defaultdict(list)
    start = time.time()
    todo = sorted((r for members in groups.values() for r in members),
                  key=lambda r: (r["model_path"], r["system"], r["backend"], r["mode"]))
    fields = ["id", "system", "engine", "mode", "family", "split", "workers", "mtp", "mtp_source", "concurrency",
              "deployment",
              "pred_ttft_s", "meas_ttft_s", "pred_tpot_s", "meas_tpot_s", "ttft_err", "tpot_err", "preemptions",
              "kv_peak_use"]
    with open(args.out or os.devnull, "w", newline="") as out, \
            open(args.skipped_out or os.devnull, "w", newline="") as skipped_out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        skip_writer = csv.DictWriter(skipped_out, fieldnames=SKIPPED_FIELDS)
        skip_writer.writeheader()

        def skip(row: dict[str, str], reason: str) -> None:
            skipped[reason].append(row["id"])
            skip_writer.writerow(skipped_row(row, reason))
            skipped_out.flush()

        for i, row in enumerate(todo):
            try:
                isl, osl, ratio = lengths(row, args.range_ratio)
                kwargs = setup(row, ratio, overhead=args.overhead == "profile", isl=isl,
                               host_launch_s=None if args.host_launch_us is None else args.host_launch_us * 1e-6,
                               mtp_source=mtp_sources.get(row["id"]))
                c = per_replica_concurrency(row)
                if args.max_concurrency and _measured_clients(row) > args.max_concurrency:  # mapped, not run
                    skip(row, f"not run: more than --max-concurrency {args.max_concurrency} clients")
                    continue
                if args.moe_skew:
                    kwargs["moe_skew"] = args.moe_skew
                if args.mtp_acceptance is not None and kwargs.get("mtp"):
                    kwargs["mtp_acceptance"] = args.mtp_acceptance
                if args.kv_cache_dtype:
                    kwargs["kv_cache_dtype"] = args.kv_cache_dtype
                if args.allreduce_fusion != "auto":
                    kwargs["engine_args"] = {**kwargs.get("engine_args", {}),
                                             "allreduce_fusion": args.allreduce_fusion == "on"}
                report = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * args.requests_per_client,
                                              isl=isl, osl=osl, range_ratio=ratio,
                                              warmup_requests=c if args.warmup else 0, kernels=args.kernels)
            except Unsupported as exc:
                skip(row, str(exc))
                continue
            except TensorCastError as exc:
                skip(row, f"{type(exc).__name__}: {str(exc)[:110]}")
                continue
            except Exception as exc:  # a defect, not a refusal: listed apart at the end, the long run goes on
                skip(row, f"{INTERNAL_ERROR}{type(exc).__name__}: {str(exc)[:110]}")
                continue
            ttft, tpot = float(row["silicon_ttft_ms"]) / 1e3, float(row["silicon_tpot_ms"]) / 1e3
            result = {"id": row["id"], "system": row["system"], "engine": row["backend"], "mode": row["mode"],
                      "family": family(row["model_path"]), "split": split(row),
                      "workers": disagg_source(row, mtp_sources.get(row["id"])) if row["mode"] == "disagg" else "given",
                      "mtp": kwargs.get("mtp", 0),
                      "mtp_source": mtp_sources.get(row["id"], "given" if row["mode"] == "agg" else ""),
                      "concurrency": c,
                      "deployment": report.deployment, "pred_ttft_s": report.mean_ttft_s, "meas_ttft_s": ttft,
                      "pred_tpot_s": report.mean_tpot_s, "meas_tpot_s": tpot,
                      "ttft_err": abs(report.mean_ttft_s - ttft) / ttft, "tpot_err": abs(report.mean_tpot_s - tpot) / tpot,
                      "preemptions": report.preemptions, "kv_peak_use": round(report.kv_peak_use, 4)}
            results.append(result)
            writer.writerow(result)
            out.flush()
            sys.stderr.write(f"{i + 1}/{len(todo)} rows, {time.time() - start:.0f} s\n")
    jitter_text = (f"in [L(1-r), L(1+r)], r = {args.range_ratio}" if args.range_ratio is not None else
                   f"sa-bench rows in [{SA_BENCH_RATIO} L, L], aic-eval rows jittered by {LENGTH_JITTER}")
    host_text = "the engine's own" if args.host_launch_us is None else f"{args.host_launch_us} us"
    print(f"protocol: {args.requests_per_client} requests per client, lengths {jitter_text}, "
          f"warm-up {'first wave excluded' if args.warmup else 'none'}, engine overheads {args.overhead}, "
          f"host time per eager launch {host_text}")
    print(f"\n{len(results)} rows simulated, {sum(len(v) for v in skipped.values())} not, of {len(todo)} "
          f"({'sampled ' + str(args.sample) + ' per group' if args.sample else 'all rows'}) in {time.time() - start:.0f} s\n")
    table: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        table[(r["system"], r["engine"], r["family"])].append(r)
    print("| device | engine | family | rows simulated / in group | split | TPOT MAE | TTFT MAE |")
    print("| --- | --- | --- | ---: | --- | ---: | ---: |")
    for key in sorted(groups):
        got = table.get(key, [])
        splits = "/".join(sorted({group_label(r).split(", ")[-1] for r in got})) or "-"
        print(f"| {key[0]} | {key[1]} | {key[2]} | {len(got)} / {len(groups[key])} | {splits} | "
              f"{mae(got, 'tpot_err')} | {mae(got, 'ttft_err')} |")
    labels = sorted({group_label(r) for r in results})
    for label in labels:
        sub = [r for r in results if group_label(r) == label]
        print(f"| all | | {label} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    for system in sorted({r["system"] for r in results}):
        for mode in ("agg", "disagg"):
            sub = [r for r in results if r["system"] == system and r["mode"] == mode]
            if sub:
                print(f"| {system} | | {mode} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    for mode in ("agg", "disagg"):
        sub = [r for r in results if r["mode"] == mode]
        if sub:
            print(f"| all | | {mode} | {len(sub)} | | {mae(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} |")
    if results:
        low_tpot = sum(r["pred_tpot_s"] < r["meas_tpot_s"] for r in results)
        low_ttft = sum(r["pred_ttft_s"] < r["meas_ttft_s"] for r in results)
        print(f"| all | | all | {len(results)} | | {mae(results, 'tpot_err')} | {mae(results, 'ttft_err')} |")
        print(f"\npredicted below measured: TPOT in {low_tpot}, TTFT in {low_ttft} of {len(results)} rows")
    print("\nrows not simulated:")
    for reason, ids in sorted(skipped.items(), key=lambda kv: -len(kv[1])):
        print(f"- {len(ids)} rows: {reason} (e.g. {ids[0]})")
    defects = sum(len(ids) for reason, ids in skipped.items() if reason.startswith(INTERNAL_ERROR))
    if defects:
        print(f"\nerror: {defects} rows failed with an internal error (listed above): a defect to fix",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
