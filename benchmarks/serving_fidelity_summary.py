"""Summarise one or more `serving_fidelity.py --out` CSVs into the README's serving-accuracy tables.

    python benchmarks/serving_fidelity_summary.py h100_agg.csv h100_disagg.csv b200_agg.csv b200_disagg.csv \
        [--before previous.csv] [--skipped h100_skipped.csv ...]

`serving_fidelity.py` is run as separate processes (per device, agg and disagg apart: a combined
run samples a different row set, see its docstring), each writing its rows with `--out`. This
script reads those rows back and prints, as markdown:
- the population table: fit population, held out, per device x mode, disagg, all — mean absolute
  error of TPOT and TTFT, with the same rows' numbers from `--before` in brackets where given
  (matched by row id: only rows present in both files are compared in the brackets' population);
- the per device x engine x family table: rows, TPOT / TTFT mean absolute error, and the median
  predicted / measured ratio of each (below 1: predicted low);
- how many rows are predicted below their measurement;
- where the error sits: per engine x mode x client count (1-8, 9-32, 33-128, 129-512, more; the
  rows' `concurrency` column), the rows, each error's mean and median predicted / measured ratio,
  and the bucket's share of the summed error of every row (a bucket of 50 % TTFT error on a tenth
  of the rows holds a fifth of the error if the rest average 22 %);
- with `--skipped` (`serving_fidelity.py --skipped-out` files): each group's coverage (rows simulated /
  rows in the group) and the rows not simulated, by reason.
The error of a row is |predicted - measured| / measured, as `serving_fidelity.py` writes it.
Nothing here simulates: the numbers are the CSVs' own.

`--package-table tensor_cast/serving/data/measured_accuracy.json --data silicon_sample_visible.csv
--measured-with "commit ..., --sample 10"` also writes the per-group table every serving report
quotes (`tensor_cast/serving/accuracy.py`): the same groups as the per-family table, with the
measured models' HF ids (from `--data`, by row id) and the all-rows error.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any


def read(paths: Iterable[str]) -> dict[str, dict[str, str]]:
    rows: dict[str, dict[str, str]] = {}
    for path in paths:
        with open(path, newline="") as fh:
            for r in csv.DictReader(fh):
                rows[r["id"]] = r
    return rows


def mae(rows: list[dict[str, str]], key: str) -> str:
    return f"{100 * sum(float(r[key]) for r in rows) / len(rows):.1f}%" if rows else "-"


def median_ratio(rows: list[dict[str, str]], what: str) -> str:
    if not rows:
        return "-"
    return f"{statistics.median(float(r[f'pred_{what}_s']) / float(r[f'meas_{what}_s']) for r in rows):.2f}"


POPULATIONS: list[tuple[str, Callable[[dict[str, str]], bool]]] = [
    ("agg, fit population (H100 dense)", lambda r: r["mode"] == "agg" and r["split"] == "fit"),
    ("agg, held out", lambda r: r["mode"] == "agg" and r["split"] != "fit"),
    ("agg, held out without gpt-oss", lambda r: r["mode"] == "agg" and r["split"] != "fit" and r["family"] != "gpt-oss"),
    ("agg, h100_sxm", lambda r: r["mode"] == "agg" and r["system"] == "h100_sxm"),
    ("agg, b200_sxm", lambda r: r["mode"] == "agg" and r["system"] == "b200_sxm"),
    ("disagg (all held out)", lambda r: r["mode"] == "disagg"),
    ("all", lambda r: True),
]


def population_table(now: dict[str, dict[str, str]], before: dict[str, dict[str, str]] | None) -> list[str]:
    lines = ["| rows | n | TPOT | TTFT |", "| --- | ---: | ---: | ---: |"]
    for name, keep in POPULATIONS:
        sub = [r for r in now.values() if keep(r)]
        if not sub:
            continue
        tpot, ttft = mae(sub, "tpot_err"), mae(sub, "ttft_err")
        if before is not None:
            old = [before[r["id"]] for r in sub if r["id"] in before]
            tpot, ttft = f"{tpot} ({mae(old, 'tpot_err')})", f"{ttft} ({mae(old, 'ttft_err')})"
        lines.append(f"| {name} | {len(sub)} | {tpot} | {ttft} |")
    return lines


def grouped(now: dict[str, dict[str, str]]) -> dict[tuple[str, str, str, str], list[dict[str, str]]]:
    groups: dict[tuple[str, str, str, str], list[dict[str, str]]] = defaultdict(list)
    for r in now.values():
        groups[(r["system"], r["engine"], r["family"], r["mode"])].append(r)
    return groups


def package_table(now: dict[str, dict[str, str]], models: dict[str, str], measured_with: str) -> dict[str, Any]:
    """The JSON `tensor_cast/serving/accuracy.py` reads: one entry per group (module docstring)."""
    def err(rows: list[dict[str, str]], key: str) -> float:
        return sum(float(r[key]) for r in rows) / len(rows)

    def ratio(rows: list[dict[str, str]], what: str) -> float:
        return statistics.median(float(r[f"pred_{what}_s"]) / float(r[f"meas_{what}_s"]) for r in rows)

    groups = []
    for (system, engine, family, mode), rows in sorted(grouped(now).items()):
        groups.append({"system": system, "engine": engine, "family": family, "mode": mode, "rows": len(rows),
                       "split": "/".join(sorted({r["split"] for r in rows})),
                       "tpot_mae": err(rows, "tpot_err"), "ttft_mae": err(rows, "ttft_err"),
                       "tpot_ratio": ratio(rows, "tpot"), "ttft_ratio": ratio(rows, "ttft"),
                       "models": sorted({models.get(r["id"], "?") for r in rows})})
    rows = list(now.values())
    return {"measured_with": measured_with, "groups": groups,
            "overall": {"rows": len(rows), "tpot_mae": err(rows, "tpot_err"), "ttft_mae": err(rows, "ttft_err")}}


def group_table(now: dict[str, dict[str, str]], skipped: dict[str, dict[str, str]] | None = None) -> list[str]:
    """One line per device x engine x family x mode; with `skipped` (the --skipped-out rows) the rows column
    reads simulated / all, and groups with no row simulated are listed too."""
    groups = grouped(now)
    missing = grouped(skipped or {})
    lines = ["| device | engine | family | mode | rows | split | TPOT MAE (median pred/meas) | TTFT MAE (median pred/meas) |",
             "| --- | --- | --- | --- | ---: | --- | ---: | ---: |"]
    for key in sorted(set(groups) | set(missing)):
        sub = groups.get(key, [])
        splits = "/".join(sorted({r["split"] for r in sub})) or "-"
        rows = f"{len(sub)} / {len(sub) + len(missing.get(key, []))}" if skipped is not None else str(len(sub))
        lines.append(f"| {' | '.join(key)} | {rows} | {splits} | {mae(sub, 'tpot_err')} ({median_ratio(sub, 'tpot')}) "
                     f"| {mae(sub, 'ttft_err')} ({median_ratio(sub, 'ttft')}) |")
    return lines


CLIENT_BUCKETS = ((1, 8), (9, 32), (33, 128), (129, 512), (513, None))  # closed-loop clients (inclusive)
BUCKET_LABELS = tuple(f"{low}+" if high is None else f"{low}-{high}" for low, high in CLIENT_BUCKETS)


def client_bucket(concurrency: str) -> str:
    """The `BUCKET_LABELS` entry of a row's client count, e.g. "9-32" or "513+"."""
    clients = int(float(concurrency))
    return next(label for (_, high), label in zip(CLIENT_BUCKETS, BUCKET_LABELS, strict=True)
                if high is None or clients <= high)


def share_table(now: dict[str, dict[str, str]]) -> list[str]:
    """Where the error sits: one line per engine x mode x client bucket (module docstring)."""
    rows = list(now.values())
    total = {key: sum(float(r[key]) for r in rows) for key in ("tpot_err", "ttft_err")}
    buckets: dict[tuple[str, str, int], list[dict[str, str]]] = defaultdict(list)
    for r in rows:  # (keyed by the bucket's position, so lines sort by client count)
        buckets[(r["engine"], r["mode"], BUCKET_LABELS.index(client_bucket(r["concurrency"])))].append(r)

    def share(sub: list[dict[str, str]], key: str) -> str:
        return f"{100 * sum(float(r[key]) for r in sub) / total[key]:.1f}%" if total[key] else "-"

    lines = ["| engine | mode | clients | rows | TPOT MAE (median pred/meas) | share of TPOT error "
             "| TTFT MAE (median pred/meas) | share of TTFT error |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for (engine, mode, bucket), sub in sorted(buckets.items()):
        lines.append(f"| {engine} | {mode} | {BUCKET_LABELS[bucket]} | {len(sub)} | {mae(sub, 'tpot_err')} "
                     f"({median_ratio(sub, 'tpot')}) | {share(sub, 'tpot_err')} | {mae(sub, 'ttft_err')} "
                     f"({median_ratio(sub, 'ttft')}) | {share(sub, 'ttft_err')} |")
    return lines


def skipped_table(skipped: dict[str, dict[str, str]]) -> list[str]:
    """The rows not simulated, by reason (most rows first), with the groups they fall in and one example id."""
    by_reason: dict[str, list[dict[str, str]]] = defaultdict(list)
    for r in skipped.values():
        by_reason[r["reason"]].append(r)
    lines = ["| rows | reason | groups (device engine family mode) | e.g. |", "| ---: | --- | --- | --- |"]
    for reason, rows in sorted(by_reason.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        where = sorted({f"{r['system']} {r['engine']} {r['family']} {r['mode']}" for r in rows})
        shown = ", ".join(where[:4]) + (f" and {len(where) - 4} more" if len(where) > 4 else "")
        lines.append(f"| {len(rows)} | {reason.replace('|', '/')} | {shown} | `{rows[0]['id']}` |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", nargs="+", help="serving_fidelity.py --out files")
    ap.add_argument("--before", action="append", default=None, help="an earlier run's --out file(s), for the brackets")
    ap.add_argument("--skipped", nargs="+", default=None,
                    help="serving_fidelity.py --skipped-out files: coverage (simulated / all rows) per group, and "
                         "the rows not simulated by reason")
    ap.add_argument("--package-table", help="also write the per-group JSON that serving reports quote (docstring)")
    ap.add_argument("--data", help="the measured rows' CSV (model ids of --package-table's groups)")
    ap.add_argument("--measured-with", default="", help="what --package-table says the groups were measured with")
    args = ap.parse_args(argv)
    if args.package_table and not (args.data and args.measured_with):
        print("error: --package-table needs --data (the measured rows) and --measured-with (commit, options)",
              file=sys.stderr)
        return 2
    try:
        now = read(args.csv)
        before = read(args.before) if args.before else None
        skipped = read(args.skipped) if args.skipped else None
    except (OSError, KeyError, csv.Error) as exc:
        print(f"error: cannot read the fidelity CSVs ({exc}); pass serving_fidelity.py --out files", file=sys.stderr)
        return 2
    if not now:
        print("error: the CSVs hold no rows; pass serving_fidelity.py --out files of a finished run", file=sys.stderr)
        return 2
    print("\n".join(population_table(now, before)))
    print()
    print("\n".join(group_table(now, skipped)))
    low_tpot = sum(float(r["pred_tpot_s"]) < float(r["meas_tpot_s"]) for r in now.values())
    low_ttft = sum(float(r["pred_ttft_s"]) < float(r["meas_ttft_s"]) for r in now.values())
    print(f"\npredicted below measured: TPOT in {low_tpot}, TTFT in {low_ttft} of {len(now)} rows")
    if all(r.get("concurrency") for r in now.values()):  # (files of older runs may lack the column)
        print("\nwhere the error sits, by engine, mode and closed-loop clients:\n")
        print("\n".join(share_table(now)))
    if skipped:
        print(f"\n{len(skipped)} rows not simulated:\n")
        print("\n".join(skipped_table(skipped)))
    if args.package_table:
        with open(args.data, newline="") as fh:
            models = {r["id"]: r["model_path"] for r in csv.DictReader(fh)}
        with open(args.package_table, "w") as fh:
            json.dump(package_table(now, models, args.measured_with), fh, indent=1, sort_keys=True)
            fh.write("\n")
        print(f"wrote {args.package_table}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
