"""Serving simulator speed: batch-cost calls and closed-loop runs, after the trace.

    python benchmarks/serving_speed.py [--model meta-llama/Llama-3.1-8B] [--device h100-sxm] [--big 100000]
        [--disagg "prefill: 1x tp1; decode: 1x tp1"] [--only agg|pp|disagg|wide]

Prints a table: microseconds per `BatchCost.step_s` call on typical batches, and wall time of
closed-loop runs of 1,000 and `--big` requests (the trace and BatchCost are built first and
not counted), plus a determinism check (two runs with the same seed -> identical JSON bytes).
The disaggregated rows (`--disagg`) run the same closed loops on a prefill and a decode pool:
every request's KV hand-over lands in the decode pool while it decodes, which cuts its
fast-forward (fast_forward.py) to a few steps, so these measure the per-step and per-run costs.
`--only wide` (not in the default set: ~1 min) runs a wide attention-DP decode pool instead, as the
GB300 disaggregated runs of thousands of clients deploy it (`WIDE`: DeepSeek-V3 on gb300, 2 prefill
workers of DEP8, one decode worker of DEP32, 6,144 clients, 12,288 requests, under SGLang and
TensorRT-LLM): about 190 requests a rank decode every step and a hand-over lands every step or two,
so the scheduler's per-request work decides the time.
Closed-loop rows print wall and CPU (process) time: on a shared machine only the latter is the
run's own. Run it with one core (`taskset -c 0`) to check the issue's one-core budgets.
"""

from __future__ import annotations

import argparse
import time
import timeit

from tabulate import tabulate


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="meta-llama/Llama-3.1-8B")
    ap.add_argument("--device", default="h100-sxm")
    ap.add_argument("--engine", default="vllm")
    ap.add_argument("--big", type=int, default=100_000)
    ap.add_argument("--disagg", default="prefill: 1x tp1; decode: 1x tp1", help="pools of the disaggregated rows")
    ap.add_argument("--only", choices=("agg", "pp", "disagg", "wide"),
                    help="only these rows (default: agg, pp and disagg)")
    args = ap.parse_args()

    import tensor_cast

    if args.only == "wide":
        print(tabulate(wide_rows(), headers=("wide attention-DP decode pool", "")))
        return 0
    start = time.perf_counter()  # the trace and BatchCost, built once (simulate() reuses them from its cache)
    tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=1, num_requests=1,
                         isl=16, osl=2)
    trace_s = time.perf_counter() - start
    rows = [("trace + BatchCost build", f"{trace_s:.2f} s")]
    if args.only in (None, "agg"):
        rows += agg_rows(args)
    if args.only in (None, "pp"):
        rows += pp_rows(args)
    if args.only in (None, "disagg"):
        rows += disagg_rows(args)
    print(tabulate(rows, headers=(f"{args.model} on {args.device}, {args.engine}", "")))
    return 0


def agg_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    import tensor_cast
    from tensor_cast.serving import step_cost

    _, cost = step_cost(tensor_cast.load_model(args.model), device=tensor_cast.load_device(args.device),
                        engine=args.engine, table_tokens=16384)
    rows = []
    batches = {
        "64 decodes": [(1, 1000 + i) for i in range(64)],
        "256 decodes + 2048-token chunk": [(1, 1000 + i) for i in range(256)] + [(2048, 0)],
        "8 prefills of 1024": [(1024, 0)] * 8,
    }
    for name, batch in batches.items():  # mean of 2,000 calls, and the best of 40 x 100 (less noise on a busy machine)
        n = 2000
        t = time.perf_counter()
        for _ in range(n):
            cost.step_s(batch)
        mean = (time.perf_counter() - t) / n
        best = min(timeit.repeat(lambda b=batch: cost.step_s(b), number=100, repeat=40)) / 100
        rows.append((f"step_s: {name}", f"{mean * 1e6:.1f} us/call mean, {best * 1e6:.1f} best"))
    for label, count, conc, isl, osl in (("closed loop 1,000 requests, c=64, 1024/1024", 1000, 64, 1024, 1024),
                                         (f"closed loop {args.big:,} requests, c=64, 1024/1024", args.big, 64,
                                          1024, 1024),
                                         (f"closed loop {args.big:,} requests, c=256, 1024/1024", args.big, 256,
                                          1024, 1024),
                                         ("closed loop 1,000 requests, c=64, lengths +-10 %", 1000, 64, 1024, 1024),
                                         ("closed loop 10,000 requests, c=256, 1024/1024, sglang", 10_000, 256, 1024,
                                          1024)):
        ratio = 0.1 if "+-" in label else 0.0
        engine = "sglang" if label.endswith("sglang") else args.engine
        t, cpu = time.perf_counter(), time.process_time()  # CPU time too: on a shared machine wall time is not ours
        report = tensor_cast.simulate(args.model, device=args.device, engine=engine, concurrency=conc,
                                      num_requests=count, isl=isl, osl=osl, range_ratio=ratio)
        rows.append((label, f"{time.perf_counter() - t:.2f} s, CPU {time.process_time() - cpu:.2f} s "
                            f"({report.steps:,} steps)"))
    runs = [tensor_cast.simulate(args.model, device=args.device, engine=args.engine, rate=20.0, num_requests=500,
                                 isl=512, osl=128, seed=11, range_ratio=0.2).to_json(requests=True) for _ in range(2)]
    rows.append(("same seed twice: identical JSON bytes", str(runs[0] == runs[1])))
    return rows


def pp_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    import tensor_cast

    rows = []
    # pipeline parallelism: the decode ring (serving/decode_ring.py) against the step-by-step path
    # (fast_forward=False: every batch through the scheduler); its stage costs built first
    tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=1, num_requests=1,
                         isl=16, osl=2, pp=2)
    for ratio in (0.0, 0.1):
        spread = ", lengths +-10 %" if ratio else ""
        timings = {}
        for fast in (True, False):
            t = time.perf_counter()
            report = tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=64,
                                          num_requests=1000, isl=1024, osl=1024, pp=2, range_ratio=ratio,
                                          fast_forward=fast)
            timings[fast] = (time.perf_counter() - t, report.to_json(requests=True))
        same = "same JSON" if timings[True][1] == timings[False][1] else "JSON DIFFERS"
        rows.append((f"closed loop 1,000 requests, c=64, 1024/1024, pp=2{spread}",
                     f"{timings[True][0]:.2f} s ({report.steps:,} batches); fast_forward=False "
                     f"{timings[False][0]:.2f} s; {same}"))
    return rows


def disagg_rows(args: argparse.Namespace) -> list[tuple[str, str]]:
    """Closed loops on `args.disagg` (both pools' step costs built first, not counted)."""
    import tensor_cast

    tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=1, num_requests=1,
                         isl=16, osl=2, disagg=args.disagg)
    rows = []
    for count, conc, ratio in ((1000, 64, 0.0), (1000, 64, 0.1), (args.big, 64, 0.1), (10_000, 256, 0.1)):
        spread = ", lengths +-10 %" if ratio else ""
        t, cpu = time.perf_counter(), time.process_time()  # CPU time too: on a shared machine wall time is not ours
        report = tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=conc,
                                      num_requests=count, isl=1024, osl=1024, range_ratio=ratio, disagg=args.disagg)
        rows.append((f"disagg closed loop {count:,} requests, c={conc}, 1024/1024{spread}",
                     f"{time.perf_counter() - t:.2f} s, CPU {time.process_time() - cpu:.2f} s ({report.steps:,} steps)"))
    runs = [tensor_cast.simulate(args.model, device=args.device, engine=args.engine, concurrency=64, num_requests=500,
                                 isl=512, osl=256, seed=3, range_ratio=0.2, disagg=args.disagg).to_json(requests=True)
            for _ in range(2)]
    rows.append(("disagg, same seed twice: identical JSON bytes", str(runs[0] == runs[1])))
    return rows


WIDE = {"model": "deepseek-ai/DeepSeek-V3", "device": "gb300", "isl": 1024, "osl": 1024, "range_ratio": 0.1,
        "disagg": "prefill: 2x tp1 dp8 ep8; decode: 1x tp1 dp32 ep32 a2a"}


def wide_rows() -> list[tuple[str, str]]:
    """Closed loops of 6,144 clients on a DEP32 decode pool (the trace and step costs built first)."""
    import tensor_cast

    rows = []
    for engine in ("sglang", "trtllm"):
        tensor_cast.simulate(**{**WIDE, "osl": 16}, engine=engine, concurrency=8, num_requests=8)
        t, cpu = time.perf_counter(), time.process_time()
        report = tensor_cast.simulate(**WIDE, engine=engine, concurrency=6144, num_requests=12_288)
        rows.append((f"{engine}: {WIDE['model']} on {WIDE['device']}, {WIDE['disagg']}, c=6144, 12,288 requests",
                     f"{time.perf_counter() - t:.2f} s, CPU {time.process_time() - cpu:.2f} s ({report.steps:,} steps)"))
    return rows


if __name__ == "__main__":
    raise SystemExit(main())
