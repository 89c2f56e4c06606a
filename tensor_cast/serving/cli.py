"""`tensor-cast serve`: the serving simulator on the command line.

Owns the `serve` subcommand's flags (`add_serve(subparsers)`) and its run (`run_serve(args)`):
the summary on stdout, `--json` (report with per-request rows), `--requests-out` (per-request
JSONL), `--trace-out` (Chrome trace of the steps), a progress bar on stderr when it is a TTY.
Files are written only after the whole simulation succeeded, each to a temporary name renamed
into place, so a failed run leaves nothing half-written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import InvalidArgumentError


def add_serve(sub: Any, add_deployment: Any) -> None:
    from .engines import engine_names

    p = sub.add_parser("serve", help="simulate serving: TTFT, TPOT, throughput under a request stream")
    p.add_argument("model", help="registry id (see `tensor-cast models`), local directory with config.json, or hub id")
    p.add_argument("--device", required=True, help="device profile name (see `tensor-cast devices`) or .toml path")
    p.add_argument("--engine", default="vllm", help=f"serving engine: {', '.join(engine_names())} (default vllm)")
    p.add_argument("--engine-arg", action="append", default=[], metavar="KNOB=VALUE",
                   help="override an engine knob, e.g. max_num_seqs=256 (repeatable)")
    arrivals = p.add_mutually_exclusive_group()
    arrivals.add_argument("--concurrency", type=int, help="closed loop: clients, all starting together")
    arrivals.add_argument("--rate", type=float, help="Poisson arrivals, requests per second")
    arrivals.add_argument("--trace", help="JSONL trace: arrival_s, prompt_tokens, output_tokens[, prefix_id, prefix_tokens]")
    p.add_argument("--num-requests", type=int, help="requests in all (closed loop: default 10 x concurrency)")
    p.add_argument("--isl", type=int, help="prompt tokens per request")
    p.add_argument("--osl", type=int, help="output tokens per request")
    p.add_argument("--disagg", help='prefill/decode pools, e.g. "prefill: 2x tp4; decode: 1x tp8"')
    p.add_argument("--num-hidden-layers", type=int, help="simulate only the first N layers")
    p.add_argument("--range-ratio", type=float, default=0.0,
                   help="prompt/output lengths uniform in [L(1-r), L(1+r)] (vLLM --random-range-ratio); default 0")
    p.add_argument("--seed", type=int, default=0, help="random seed of Poisson arrivals (default 0)")
    p.add_argument("--mtp", type=int, default=0, help="MTP draft tokens per decode step (default 0)")
    p.add_argument("--mtp-acceptance", type=float, help="per-draft acceptance rate (default 0.85)")
    p.add_argument("--prefix-hit-rate", type=float, default=0.0, help="share of each prompt in the prefix cache")
    p.add_argument("--json", dest="json_path", help="write the report (with per-request rows) as JSON")
    p.add_argument("--requests-out", help="write one JSON line per request")
    p.add_argument("--trace-out", help="write a Chrome/Perfetto trace of the steps")
    add_deployment(p)


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
    def __init__(self) -> None:
        self.last = -1

    def __call__(self, done: int, total: int) -> None:
        percent = done * 100 // max(1, total)
        if percent != self.last:
            self.last = percent
            sys.stderr.write(f"\rsimulating: {done}/{total} requests ({percent}%)")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()


def _write(path: str, text: str) -> None:
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, target)


def run_serve(args: argparse.Namespace, deployment: dict[str, Any]) -> int:
    from .api import simulate

    report = simulate(
        args.model, device=args.device, engine=args.engine, concurrency=args.concurrency, rate=args.rate,
        trace=args.trace, num_requests=args.num_requests, isl=args.isl, osl=args.osl, disagg=args.disagg,
        engine_args=_engine_args(args.engine_arg), seed=args.seed, mtp=args.mtp, mtp_acceptance=args.mtp_acceptance,
        prefix_hit_rate=args.prefix_hit_rate, range_ratio=args.range_ratio, num_hidden_layers=args.num_hidden_layers,
        record_steps=bool(args.trace_out),
        progress=_Progress() if sys.stderr.isatty() else None, **deployment)
    outputs = []
    if args.json_path:
        outputs.append((args.json_path, report.to_json(requests=True)))
    if args.requests_out:
        outputs.append((args.requests_out, report.requests_jsonl()))
    if args.trace_out:
        outputs.append((args.trace_out, json.dumps(report.chrome_trace())))
    for path, text in outputs:
        _write(path, text)
    print(report.summary())
    if outputs:
        print("\nwrote " + ", ".join(path for path, _ in outputs))
    return 0
