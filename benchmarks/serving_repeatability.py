"""How far apart the measured serving runs of one recorded configuration are: the data's own floor.

    python benchmarks/serving_repeatability.py --data ../shared/serving/silicon_sample_visible.csv \
        [--rows h100_agg.csv b200_agg.csv ...]

The silicon sample holds some configurations measured more than once: the same system, engine,
model, lengths, parallelism, quantization and concurrency (`CONFIG`), run on different dates or by
different sweeps. Rows that repeat one measurement (equal TTFT and TPOT: the sample writes some runs
twice, under two parallelism conventions or two sources) count once. Where a configuration holds two
or more *distinct* measurements, their spread is what the recorded columns do not determine — the
engine build, launch flags the columns leave out, the harness, the machine — and so a floor under
the error of any predictor that sees only those columns: predicting one run exactly still misses its
twin by that much. The B200 DeepSeek-R1 sa-bench pairs that `serving_fidelity.agg_mtp_sources` reads
as an MTP run and its plain twin (TPOT 1.2x or more apart) are two configurations, not one.

Prints, per system x engine x mode (agg; disagg rows repeat too rarely to matter), over the
configurations with distinct repeats:
- `twin error`: the mean of |a - b| / b over every ordered pair (a, b) of distinct runs of one
  configuration — the mean absolute relative error of predicting a run by its twin;
- `to the mean`: the mean of |x - m| / x over the runs, m the configuration's mean — the error of the
  best constant prediction per configuration (what a perfect model of the configuration would score);
- the median and 90th percentile of max / min per configuration.
With `--rows` (`serving_fidelity.py --out` CSVs): tensor_cast's mean absolute error on the rows that
belong to a repeated configuration, beside the floor of the same rows (`to the mean`), so the two
are compared on one population. Nothing here simulates.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import re
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

CONFIG = ("system", "backend", "mode", "model_path", "isl", "osl", "tp_size", "pp_size", "attention_dp_size",
          "moe_tp_size", "moe_ep_size", "gemm_quant_mode", "moe_quant_mode")
METRICS = (("ttft", "silicon_ttft_ms"), ("tpot", "silicon_tpot_ms"))


def clients(row: dict[str, str]) -> str:
    """The row's concurrency as its source wrote it (`silicon_concurrency=`), else its batch size."""
    found = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    return found.group(1) if found else row["batch_size"]


def config(row: dict[str, str], mtp: dict[str, str] | None = None) -> tuple[str, ...]:
    """The recorded configuration; `mtp`: row id -> the agg MTP label (serving_fidelity.agg_mtp_sources)."""
    return (*(row[k] for k in CONFIG), clients(row), (mtp or {}).get(row["id"], ""))


def measurements(row: dict[str, str]) -> tuple[float, float]:
    return float(row["silicon_ttft_ms"]), float(row["silicon_tpot_ms"])


ROUNDING_MS = 0.006  # some sources round to 0.01 ms: values this close are one measurement


def same(a: dict[str, str], b: dict[str, str]) -> bool:
    return all(abs(x - y) <= ROUNDING_MS for x, y in zip(measurements(a), measurements(b), strict=True))


def repeated(rows: Iterable[dict[str, str]], mtp: dict[str, str] | None = None
             ) -> dict[tuple[str, ...], list[dict[str, str]]]:
    """Configurations with two or more distinct measurements -> one row per distinct measurement
    (the first id of each; a row whose TTFT and TPOT both lie within `ROUNDING_MS` of a kept one
    repeats that measurement)."""
    groups: dict[tuple[str, ...], list[dict[str, str]]] = defaultdict(list)
    for r in rows:
        kept = groups[config(r, mtp)]
        if not any(same(r, k) for k in kept):
            kept.append(r)
    return {k: v for k, v in groups.items() if len(v) >= 2}


def twin_error(values: list[float]) -> list[float]:
    """|a - b| / b over every ordered pair of distinct runs."""
    return [abs(a - b) / b for a, b in itertools.permutations(values, 2)]


def to_the_mean(values: list[float]) -> list[float]:
    m = sum(values) / len(values)
    return [abs(x - m) / x for x in values]


def pct(xs: list[float]) -> str:
    return f"{100 * sum(xs) / len(xs):.1f}%" if xs else "-"


def spread_table(groups: dict[tuple[str, ...], list[dict[str, str]]]) -> list[str]:
    by_cell: dict[tuple[str, str, str], list[list[dict[str, str]]]] = defaultdict(list)
    for key, runs in groups.items():
        by_cell[(key[0], key[1], key[2])].append(runs)
    lines = ["| system | engine | mode | configurations | runs | TTFT twin error | TTFT to the mean | TTFT max/min "
             "(median, p90) | TPOT twin error | TPOT to the mean | TPOT max/min (median, p90) |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    cells = [*sorted(by_cell.items()), (("all", "", ""), [r for v in by_cell.values() for r in v])]
    for (system, engine, mode), configs in cells:
        cols = []
        for i, _ in enumerate(METRICS):
            values = [[measurements(r)[i] for r in runs] for runs in configs]
            ratios = sorted(max(v) / min(v) for v in values)
            p90 = ratios[min(len(ratios) - 1, int(0.9 * len(ratios)))]
            cols += [pct([e for v in values for e in twin_error(v)]), pct([e for v in values for e in to_the_mean(v)]),
                     f"{statistics.median(ratios):.2f}, {p90:.2f}"]
        lines.append(f"| {system} | {engine} | {mode} | {len(configs)} | {sum(len(c) for c in configs)} | "
                     + " | ".join(cols) + " |")
    return lines


def model_table(groups: dict[tuple[str, ...], list[dict[str, str]]], data: dict[str, dict[str, str]],
                predicted: dict[str, dict[str, str]], mtp: dict[str, str] | None = None) -> list[str]:
    """tensor_cast's error on the simulated rows of repeated configurations beside the floor of the same rows."""
    floor: dict[str, tuple[float, float]] = {}
    for key, runs in groups.items():
        per_metric = [[measurements(r)[i] for r in runs] for i, _ in enumerate(METRICS)]
        means = [sum(v) / len(v) for v in per_metric]
        for rid, row in data.items():  # every id of the configuration, duplicates included
            if config(row, mtp) == key:
                x = measurements(row)
                floor[rid] = (abs(x[0] - means[0]) / x[0], abs(x[1] - means[1]) / x[1])
    rows = [r for rid, r in predicted.items() if rid in floor]
    lines = ["| rows | n | tensor_cast TTFT | floor TTFT (to the mean) | tensor_cast TPOT | floor TPOT (to the mean) |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    if rows:
        lines.append(f"| simulated rows of repeated configurations | {len(rows)} | "
                     f"{pct([float(r['ttft_err']) for r in rows])} | {pct([floor[r['id']][0] for r in rows])} | "
                     f"{pct([float(r['tpot_err']) for r in rows])} | {pct([floor[r['id']][1] for r in rows])} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--rows", nargs="*", default=[], help="serving_fidelity.py --out CSVs")
    args = ap.parse_args(argv)
    with open(args.data, newline="") as fh:
        every = list(csv.DictReader(fh))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from serving_fidelity import agg_mtp_sources

    mtp = agg_mtp_sources(every)
    groups = repeated((r for r in every if r["mode"] == "agg"), mtp)
    print(f"{len(groups)} agg configurations measured more than once (distinct measurements), "
          f"{sum(len(v) for v in groups.values())} runs\n")
    print("\n".join(spread_table(groups)))
    if args.rows:
        predicted: dict[str, dict[str, str]] = {}
        for path in args.rows:
            with open(path, newline="") as fh:
                predicted.update({r["id"]: r for r in csv.DictReader(fh)})
        print()
        print("\n".join(model_table(groups, {r["id"]: r for r in every}, predicted, mtp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
