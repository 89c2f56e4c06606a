"""Device transfer check: the held-out devices' profiles against their B200 twins, engine held fixed.

    python benchmarks/serving_device_transfer.py --data ../shared/serving/silicon_sample_visible.csv \
        [--devices b300_sxm,gb200,gb300] [--per-group 3] [--any-image] [--out pairs.csv] \
        [--profile b300_sxm=old_b300.toml]

The b300 / gb200 / gb300 profiles carry datasheet peaks and B200's transferred efficiency sections,
so a held-out row's error mixes two things: what the simulator gets wrong on any device (it shows
on the B200 rows too) and what the held-out profile gets wrong about its device. This script
isolates the second. A *twin* is a b200_sxm row measured with the same engine, engine image (the
`silicon_data_source` image tag, unless `--any-image`), model, precision, ISL/OSL, parallelism and
concurrency as a held-out row. Each pair is simulated twice from the B200 twin's own mapping
(`serving_fidelity.setup`: its launch flags, MTP, lengths), once on the `b200` profile and once on
the held-out device's, so the only input that changes is the profile. Printed per (device, engine,
model, precision): the measured held-out / B200 ratio of mean TPOT and TTFT (medians over the
pairs) beside the predicted ratio. A predicted ratio that matches the measured one says the
profile's differences from B200 (peaks, memory, links) are the right ones, whatever the absolute
error; a gap is a device-level miss. Nothing here is fitted: the ratios only check.

Twins exist only where both devices ran the same InferenceMAX point (b300_sxm agg rows; the NVL72
systems' disagg recipes have almost no B200 counterparts), so this covers B300 agg serving.
"""

from __future__ import annotations

import argparse
import csv
import re
import statistics
import sys
from collections import defaultdict
from typing import Any

import fidelity_mapping as fm  # the row's concurrency
import serving_fidelity as sf

KEY = ("backend", "model_path", "precision", "mode", "isl", "osl", "tp_size", "pp_size", "attention_dp_size",
       "moe_tp_size", "moe_ep_size", "prefill_num_workers", "prefill_tp_size", "prefill_moe_ep_size",
       "decode_num_workers", "decode_tp_size", "decode_moe_ep_size")
IMAGE = re.compile(r"(lmsysorg/sglang:\S+|vllm/vllm-openai:\S+|nvcr\.io/\S+)")


def image(row: dict[str, str]) -> str:
    m = IMAGE.search(row["silicon_data_source"])
    return m.group(1).rstrip(";") if m else ""


def twin_key(row: dict[str, str], any_image: bool) -> tuple[str, ...]:
    conc = re.search(r"silicon_concurrency=(\d+)", row["silicon_data_source"])
    return (*(row[k] for k in KEY), conc.group(1) if conc else "", "" if any_image else image(row))


def pairs(rows: list[dict[str, str]], devices: list[str], any_image: bool, per_group: int
          ) -> list[tuple[dict[str, str], dict[str, str]]]:
    """(held-out row, B200 twin) pairs, at most `per_group` per (device, engine, model, precision), spread
    over each group's rows as serving_fidelity's --sample spreads them."""
    b200: dict[tuple[str, ...], dict[str, str]] = {}
    for r in rows:
        if r["system"] == "b200_sxm" and sf.MODELS.get(r["model_path"]):
            b200.setdefault(twin_key(r, any_image), r)
    groups: dict[tuple[str, ...], list[tuple[dict[str, str], dict[str, str]]]] = defaultdict(list)
    for r in rows:
        twin = b200.get(twin_key(r, any_image)) if r["system"] in devices else None
        if twin is not None:
            groups[(r["system"], r["backend"], r["model_path"], r["precision"])].append((r, twin))
    out = []
    for key in sorted(groups):
        members = groups[key]
        step = max(1, len(members) // per_group) if per_group else 1
        out += members[::step][: per_group or None]
    return out


def simulate(row: dict[str, str], device: str, requests_per_client: int) -> tuple[float, float]:
    """(mean TTFT, mean TPOT) of `row` mapped as serving_fidelity maps it, on `device`'s profile."""
    import tensor_cast

    isl, osl, ratio = sf.lengths(row, None)
    kwargs = sf.setup(row, ratio, isl=isl)
    kwargs["device"] = device
    c = sf.per_replica_concurrency(row)
    report = tensor_cast.simulate(**kwargs, concurrency=c, num_requests=c * requests_per_client, isl=isl, osl=osl,
                                  range_ratio=ratio)
    return report.mean_ttft_s, report.mean_tpot_s


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--devices", default="b300_sxm,gb200,gb300")
    ap.add_argument("--per-group", type=int, default=3, help="pairs per device x engine x model x precision (0: all)")
    ap.add_argument("--any-image", action="store_true", help="pair rows measured on different engine images too")
    ap.add_argument("--requests-per-client", type=int, default=10)
    ap.add_argument("--out", help="per-pair CSV")
    ap.add_argument("--profile", action="append", default=[], metavar="SYSTEM=TOML",
                    help="simulate a held-out system's rows on this profile file instead of its built-in one "
                         "(e.g. the profile before a change); repeatable")
    args = ap.parse_args()

    from tensor_cast.errors import TensorCastError

    with open(args.data, newline="") as fh:
        rows = list(csv.DictReader(fh))
    todo = pairs(rows, args.devices.split(","), args.any_image, args.per_group)
    profiles = dict(sf.SYSTEMS)
    for item in args.profile:
        system, sep, path = item.partition("=")
        if not sep or system not in profiles:
            ap.error(f"--profile {item!r}: accepted SYSTEM=TOML with SYSTEM one of {', '.join(profiles)}")
        profiles[system] = path
    fields = ["id", "b200_id", "system", "engine", "model", "precision", "isl", "concurrency", "image",
              "b200_tpot_err", "tpot_err", "b200_ttft_err", "ttft_err",
              "meas_tpot_ratio", "pred_tpot_ratio", "meas_ttft_ratio", "pred_ttft_ratio"]
    results: list[dict[str, Any]] = []
    with open(args.out or "/dev/null", "w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=fields)
        writer.writeheader()
        for i, (row, twin) in enumerate(todo):
            try:
                ttft_b, tpot_b = simulate(twin, "b200", args.requests_per_client)
                ttft_h, tpot_h = simulate(twin, profiles[row["system"]], args.requests_per_client)
            except (sf.Unsupported, TensorCastError) as exc:
                print(f"skipped {row['id']}: {str(exc)[:120]}", file=sys.stderr)
                continue
            tpot, twin_tpot = float(row["silicon_tpot_ms"]) / 1e3, float(twin["silicon_tpot_ms"]) / 1e3
            ttft, twin_ttft = float(row["silicon_ttft_ms"]) / 1e3, float(twin["silicon_ttft_ms"]) / 1e3
            result = {"id": row["id"], "b200_id": twin["id"], "system": row["system"], "engine": row["backend"],
                      "model": sf.family(row["model_path"]), "precision": row["precision"], "isl": row["isl"],
                      "concurrency": fm.concurrency(row), "image": image(row),
                      "b200_tpot_err": tpot_b / twin_tpot - 1, "tpot_err": tpot_h / tpot - 1,
                      "b200_ttft_err": ttft_b / twin_ttft - 1, "ttft_err": ttft_h / ttft - 1,
                      "meas_tpot_ratio": tpot / twin_tpot, "pred_tpot_ratio": tpot_h / tpot_b,
                      "meas_ttft_ratio": ttft / twin_ttft, "pred_ttft_ratio": ttft_h / ttft_b}
            results.append(result)
            writer.writerow(result)
            out.flush()
            print(f"{i + 1}/{len(todo)} pairs", file=sys.stderr)
    print(f"{len(results)} pairs ({'any image' if args.any_image else 'same engine image'}), "
          f"{args.requests_per_client} requests per client\n")
    print("Medians over the pairs. Signed errors: predicted / measured - 1 of the B200 twin (b200 profile) and of the "
          "held-out row (its own profile, the twin's mapping). Ratios: held-out / B200.\n")
    print("| device | engine | model | precision | pairs | TPOT err B200 | held-out | TPOT ratio measured | predicted "
          "| TTFT err B200 | held-out | TTFT ratio measured | predicted |")
    print("| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    table: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for r in results:
        table[(r["system"], r["engine"], r["model"], r["precision"])].append(r)
    for key, rs in sorted(table.items()):
        med = {k: statistics.median(r[k] for r in rs) for k in fields[9:]}
        print(f"| {' | '.join(key)} | {len(rs)} | {med['b200_tpot_err']:+.0%} | {med['tpot_err']:+.0%} | "
              f"{med['meas_tpot_ratio']:.2f} | {med['pred_tpot_ratio']:.2f} | {med['b200_ttft_err']:+.0%} | "
              f"{med['ttft_err']:+.0%} | {med['meas_ttft_ratio']:.2f} | {med['pred_ttft_ratio']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
