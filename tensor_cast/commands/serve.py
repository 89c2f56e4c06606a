"""`tensor-cast serve`: the serving simulator (tensor_cast/serving/) on the command line.

Checks its arguments, output paths and device before importing torch, then runs
`tensor_cast.simulate` and writes `--json` (report with per-request rows), `--requests-out`
(per-request JSONL) and `--trace-out` (Chrome trace of the steps) all-or-nothing
(`tensor_cast/outputs.py`): a failed run leaves nothing half-written. A progress line on stderr
while it runs, only when stderr is a terminal. Several comma-separated `--concurrency` or `--rate`
values sweep the load (`tensor_cast.simulate_sweep`): a table with one row per level, `--json` with
every level's report.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..backends.engines import ENGINES as KERNEL_SECTIONS
from ..errors import InvalidArgumentError
from .common import (
    add_deployment_arguments,
    add_mtp_arguments,
    deployment_options,
    finite_float,
    int_at_least,
    list_of,
    model_or_spec,
)

HELP = "simulate serving: TTFT, TPOT, throughput under load"


def add_arguments(p: argparse.ArgumentParser) -> None:
    from ..serving.engines import engine_names  # no torch: a table of engine defaults

    p.add_argument("model", help="registry id (see `tensor-cast models`), local directory with config.json, or hub id")
    p.add_argument("--device", required=True, help="device profile name (see `tensor-cast devices`) or .toml path")
    p.add_argument("--engine", default="vllm", help=f"serving engine: {', '.join(engine_names())} (default vllm)")
    p.add_argument("--kernels", choices=KERNEL_SECTIONS, default=None,
                   help="device-profile efficiency section that costs the steps (default: the engine's own)")
    p.add_argument("--engine-arg", action="append", default=[], metavar="KNOB=VALUE",
                   help="override an engine knob, e.g. max_num_seqs=256 (repeatable)")
    arrivals = p.add_mutually_exclusive_group()
    arrivals.add_argument("--concurrency", type=list_of(int_at_least(1)),
                          help="closed loop: clients, all starting together; several (e.g. 1,8,32,128) sweep the load")
    arrivals.add_argument("--rate", type=list_of(finite_float),
                          help="Poisson arrivals, requests per second; several (e.g. 1,2,4,8) sweep the load")
    arrivals.add_argument("--trace", help="JSONL trace: arrival_s, prompt_tokens, output_tokens[, prefix_id, prefix_tokens]")
    p.add_argument("--num-requests", type=int_at_least(1), help="requests in all (closed loop: default 10 x concurrency)")
    p.add_argument("--isl", type=int_at_least(1), help="prompt tokens per request")
    p.add_argument("--osl", type=int_at_least(1), help="output tokens per request")
    p.add_argument("--disagg", help='prefill/decode pools, each "<N>x tp<a> [dp<b>] [ep<c>] [pp<d>] [bs<s>]" '
                                     '(bs: requests one rank runs at once), e.g. "prefill: 2x tp4; decode: 1x tp8 bs64"')
    p.add_argument("--num-hidden-layers", type=int, help="simulate only the first N layers")
    p.add_argument("--moe-skew", type=finite_float, default=0.0,
                   help="Zipf skew of MoE expert popularity in every step (0: uniform routing; analyze's --moe-skew)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a config's remote code")
    p.add_argument("--range-ratio", type=finite_float, default=0.0,
                   help="prompt/output lengths uniform in [L(1-r), L(1+r)] (vLLM --random-range-ratio); default 0")
    p.add_argument("--warmup-requests", type=int_at_least(0), default=0,
                   help="leave the first N requests out of the latency statistics (default 0)")
    p.add_argument("--seed", type=int, default=0, help="random seed of arrivals and lengths (default 0)")
    add_mtp_arguments(p)
    p.add_argument("--prefix-hit-rate", type=finite_float, default=0.0, help="share of each prompt in the prefix cache")
    p.add_argument("--goodput", nargs="+", metavar="KEY:MS",
                   help="latency objectives, e.g. ttft:300 tpot:50 (milliseconds; keys ttft, tpot, e2el): the share of "
                        "requests meeting all of them and their rate, as vLLM's benchmark --goodput")
    p.add_argument("--json", dest="json_path", help="write the report (with per-request rows) as JSON")
    p.add_argument("--requests-out", help="write one JSON line per request")
    p.add_argument("--trace-out", help="write a Chrome/Perfetto trace of the steps")
    p.add_argument("--no-fast-forward", dest="fast_forward", action="store_false",
                   help="step every batch one at a time (the slow reference path; same results up to float rounding)")
    add_deployment_arguments(p)


def _engine_args(items: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidArgumentError(f"--engine-arg {item!r} is not KNOB=VALUE (e.g. max_num_seqs=256)")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


class _Progress:
    """Requests (or sweep levels) finished so far, on stderr (only used when stderr is a terminal)."""

    def __init__(self, unit: str = "requests") -> None:
        self.last = -1
        self.unit = unit

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(1, total)
        if percent != self.last:
            self.last = percent
            sys.stderr.write(f"\rtensor-cast: simulating {done}/{total} {self.unit} ({percent}%)")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    from .. import outputs
    from ..backends.device import load_device
    from ..models.locate import check_model_argument
    from ..serving.engines import engine_profile
    from ..serving.goodput import parse_slo

    engine_profile(args.engine, _engine_args(args.engine_arg))  # unknown engine / knob: before torch
    slo = parse_slo(args.goodput) if args.goodput is not None else None
    levels = args.concurrency or args.rate or []
    sweep = len(levels) > 1
    if sweep:
        for option, value in (("--requests-out", args.requests_out), ("--trace-out", args.trace_out)):
            if value is not None:
                raise InvalidArgumentError(f"{option} takes one run, not a sweep of {len(levels)} levels; accepted: one "
                                           f"--{'concurrency' if args.concurrency else 'rate'} value with {option}")
    files: list[tuple[str, Path]] = []
    for option, value in (("--json", args.json_path), ("--requests-out", args.requests_out),
                          ("--trace-out", args.trace_out)):
        if value is not None:
            files.append((option, outputs.check_file(value, option)))
    outputs.check_distinct(files)
    load_device(args.device)
    check_model_argument(args.model)
    model = model_or_spec(args)

    from ..progress import stderr_progress, step

    with stderr_progress():
        step("loading the simulator")
        from ..serving.api import simulate  # torch and transformers only if a trace is not in the disk cache
        from ..serving.sweep import simulate_sweep

        shared = dict(
            device=args.device, engine=args.engine, trace=args.trace, num_requests=args.num_requests, isl=args.isl,
            osl=args.osl, disagg=args.disagg, engine_args=_engine_args(args.engine_arg), seed=args.seed, mtp=args.mtp,
            mtp_acceptance=args.mtp_acceptance, prefix_hit_rate=args.prefix_hit_rate, range_ratio=args.range_ratio,
            warmup_requests=args.warmup_requests, num_hidden_layers=args.num_hidden_layers, kernels=args.kernels,
            fast_forward=args.fast_forward, moe_skew=args.moe_skew, **deployment_options(args))
        report: Any
        if sweep:  # --concurrency / --rate / --trace are exclusive: trace is None here
            kind = "concurrency" if args.concurrency else "rate"
            report = simulate_sweep(model, **{kind: levels}, **shared,
                                    progress=_Progress("levels") if sys.stderr.isatty() else None)
        else:
            report = simulate(
                model, concurrency=args.concurrency[0] if args.concurrency else None,
                rate=args.rate[0] if args.rate else None, record_steps=args.trace_out is not None,
                progress=_Progress() if sys.stderr.isatty() else None, **shared)
        render: dict[str, Callable[[], str]] = {"--json": lambda: report.to_json(requests=True, slo=slo),
                                                "--requests-out": lambda: report.requests_jsonl(),
                                                "--trace-out": lambda: json.dumps(report.chrome_trace())}
        written = outputs.write_all([(path, render[option]()) for option, path in files])
    print(report.summary(slo))
    if written:
        print("\nwrote " + ", ".join(str(path) for _, path in files))
    return 0
