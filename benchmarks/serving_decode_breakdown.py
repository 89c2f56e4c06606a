"""Where a serving row's decode step goes: tensor_cast's decode step per op class beside the measured TPOT.

    python benchmarks/serving_decode_breakdown.py --data ../shared/serving/silicon_sample_visible.csv \
        --ids rows.txt [--per-layer 3]

For each row (ids one per line, e.g. from a `serving_fidelity.py --out` CSV), the row's deployment
as `serving_fidelity.setup` maps it (its engine, quantization, tp / dp / ep / moe_tp, and the MTP of a
DeepSeek B200 MTP twin) is analyzed at one decode step: batch = the clients one attention-DP rank serves,
one new token each (with MTP: `analyze(mtp=N)`, 1 + N verified plus the draft passes), context = isl + osl / 2 (the mean over a request's
decode). Printed: the step per op class (time, calls, bytes), the engine's fitted per-step overhead
at that batch (`EngineProfile.overhead_s`), and the measured TPOT with what it leaves for the MoE
layers once everything else is subtracted (`MoE allowed`, per MoE layer): the number to set against
the fused-MoE kernel tables. A closed loop's TPOT also carries the prefills mixed into decode steps,
which this does not add, so `MoE allowed` is an upper bound. With `--per-layer N` the ops of layer N
are listed too. Agg rows only (a disagg row's decode pool is not broken down here).
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving_fidelity as sf


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="the serving rows CSV (shared/serving/silicon_sample_visible.csv)")
    ap.add_argument("--ids", required=True, help="a file with one row id per line")
    ap.add_argument("--per-layer", type=int, default=None, help="also list the ops of this layer")
    args = ap.parse_args()

    import tensor_cast
    from tensor_cast.serving.engines import ENGINES

    wanted = [line.strip() for line in Path(args.ids).read_text().splitlines() if line.strip()]
    with open(args.data, newline="") as fh:
        every = list(csv.DictReader(fh))
    mtp_sources = sf.agg_mtp_sources(every)
    rows = {r["id"]: r for r in every if r["id"] in set(wanted)}
    for rid in wanted:
        row = rows.get(rid)
        if row is None or row["mode"] != "agg":
            print(f"\n== {rid}: {'not in the data' if row is None else 'not an agg row'}")
            continue
        try:
            kwargs = sf.setup(row, mtp_source=mtp_sources.get(rid))
            mtp = kwargs.pop("mtp", 0)
        except sf.Unsupported as exc:
            print(f"\n== {rid}: not simulated: {exc}")
            continue
        model = kwargs.pop("model")
        engine_args = kwargs.pop("engine_args", {})
        clients = sf.per_replica_concurrency(row)
        batch = max(1, clients // kwargs.get("dp", 1))
        context = int(row["isl"]) + int(row["osl"]) // 2
        if mtp:  # analyze verifies 1 + mtp tokens per sequence and runs the draft passes
            kwargs["mtp"] = mtp
        report = tensor_cast.analyze(model, batch_size=batch, query_len=1, context_len=context, **kwargs)
        engine = ENGINES[row["backend"]]
        overhead = engine_args.get("step_overhead_s", engine.step_overhead_s) + \
            engine_args.get("seq_overhead_s", engine.seq_overhead_s) * batch
        by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
        for op in report.ops:
            entry = by_kind[op.kind]
            entry[0] += 1
            entry[1] += float(op.time_s)
            entry[2] += float(op.bytes)
        tpot = float(row["silicon_tpot_ms"]) * 1e-3
        step = float(report.total_time_s)
        layout = ", ".join(f"{k} {v}" for k, v in kwargs.items() if k != "engine")
        print(f"\n== {rid}\n   {row['backend']} {row['backend_version'] or '?'}, {layout}; "
              f"{batch} sequences x {1 + mtp} tokens, context {context}")
        print(f"   measured TPOT {tpot * 1e3:.2f} ms; step {step * 1e3:.2f} ms + engine overhead {overhead * 1e3:.2f} ms"
              + (f" (MTP {mtp}: {float(report.time_per_output_token_s) * 1e3:.2f} ms per accepted token at the default "
                 "acceptance)"
                 if mtp else ""))
        for kind, (calls, time_s, nbytes) in sorted(by_kind.items(), key=lambda kv: -kv[1][1]):
            print(f"   {kind:<12} {time_s * 1e3:8.3f} ms  {calls:5d} calls  {time_s / calls * 1e6:8.2f} us/call  "
                  f"{nbytes / 1e9:7.3f} GB")
        moe_calls, moe_s = by_kind["moe"][0], by_kind["moe"][1] if "moe" in by_kind else 0.0
        if moe_calls and not mtp:
            allowed = (tpot - overhead - (step - moe_s)) / moe_calls
            print(f"   MoE: {moe_s / moe_calls * 1e6:.1f} us/layer simulated; measured TPOT leaves <= "
                  f"{allowed * 1e6:.1f} us/layer (MoE allowed)")
        if args.per_layer is not None:
            for op in report.ops:
                if op.layer == args.per_layer:
                    print(f"     L{op.layer} {op.kind:<12} {str(op.name)[:44]:<44} {float(op.time_s) * 1e6:8.2f} us "
                          f"{float(op.bytes) / 1e6:9.2f} MB {op.bound}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
