"""The `search`, `recommend` and `cache` subcommands of `tensor-cast`.

`add_*_arguments(parser)` fill the parsers (importing no torch) and `run_*(args)` run them
(tensor_cast/commands/{search,recommend,cache}.py are their rows in the CLI's table); they
raise `TensorCastError` for bad input (the main CLI prints one line, exits 2).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

# space.DEFAULT_CONCURRENCY, spelled here so the parser imports no torch (a test keeps them equal)
DEFAULT_CONCURRENCY = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def _common(p: Any) -> None:
    p.add_argument("model", help="registry id, local directory with config.json, or hub id")
    p.add_argument("--devices", required=True, help="comma-separated device profiles, e.g. h100-sxm,h200,b200")
    p.add_argument("--isl", type=int, required=True, help="prompt tokens per request")
    p.add_argument("--osl", type=int, required=True, help="output tokens per request")
    p.add_argument("--ttft", help="time-to-first-token target, e.g. 300ms")
    p.add_argument("--tpot", help="time-per-output-token target, e.g. 10ms")
    p.add_argument("--slo-stat", default="mean",
                   help="statistic the targets apply to: mean (default), p90, or attainment[:share] — at least that "
                        "share of the requests (default 0.9) within both targets, each request on its own TTFT and "
                        "TPOT (DistServe's SLO attainment, vLLM's goodput)")
    p.add_argument("--engine", default="vllm",
                   help="serving engine: vllm (default), sglang, trtllm; several (e.g. vllm,sglang) are compared: "
                        "every configuration under each, the best per device and engine")
    p.add_argument("--quant", help="quantizations to try besides the checkpoint's own, e.g. fp8,fp8_block "
                   "(those the checkpoint serves as stored are its own)")
    p.add_argument("--kv-cache-dtype", help="KV-cache dtypes to try: auto,fp8 (default both)")
    p.add_argument("--concurrency", default=",".join(map(str, DEFAULT_CONCURRENCY)),
                   help="closed-loop clients per instance to simulate (comma-separated)")
    p.add_argument("--range-ratio", type=float, default=0.0,
                   help="prompt/output lengths uniform in [L(1-r), L(1+r)]; default 0: fixed lengths, whose clients "
                        "move in lock-step waves")
    p.add_argument("--price", action="append", help="GPU price, e.g. h100-sxm=2.5/h (repeat or comma-separate)")
    p.add_argument("--jobs", type=int, help="worker processes (default: the CPUs)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS",
                   help="run traces and simulations as Ray tasks (no address: a local Ray)")
    p.add_argument("--disagg", action="store_true",
                   help="also search disaggregated units (x prefill workers + a decode worker)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the trace cache")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a config's remote code")
    p.add_argument("--no-screen", action="store_true",
                   help="simulate every concurrency level, also those above a level that already misses the SLOs "
                        "(by default they are listed as screened, not simulated)")
    p.add_argument("--json", dest="json_path", help="write the result as JSON")
    p.add_argument("--csv", dest="csv_path", help="write every simulated configuration as CSV")
    p.add_argument("--html", dest="html_path", help="write a self-contained HTML report")
    p.add_argument("--plot", dest="plot_path", help="write the Pareto plot (.png or .svg; needs matplotlib)")


SEARCH_HELP = "search deployments under latency SLOs"
RECOMMEND_HELP = "fewest GPUs for a request rate"
CACHE_HELP = "the trace cache: info | clear"


def add_search_arguments(p: Any) -> None:
    _common(p)
    p.add_argument("--gpus", required=True, help="total GPU counts, e.g. 8,16,32")


def add_recommend_arguments(p: Any) -> None:
    _common(p)
    p.add_argument("--rate", required=True, help="request rate, e.g. 20/s")
    p.add_argument("--max-gpus-per-instance", type=int, default=16, help="largest engine instance (default 16)")


def add_cache_arguments(p: Any) -> None:
    p.add_argument("action", choices=("info", "clear"))


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {"devices": args.devices, "isl": args.isl, "osl": args.osl, "ttft": args.ttft, "tpot": args.tpot,
            "slo_stat": args.slo_stat, "engine": args.engine, "quant": args.quant,
            "kv_cache_dtype": args.kv_cache_dtype, "concurrency": args.concurrency, "prices": args.price,
            "jobs": args.jobs, "ray": args.ray, "cache": not args.no_cache, "disagg": args.disagg,
            "screen": not args.no_screen, "range_ratio": args.range_ratio}


def _write(result: Any, args: argparse.Namespace) -> int:
    outputs: dict[str, str] = {}  # rendered before any file is written: nothing half-written
    if args.json_path:
        outputs[args.json_path] = result.to_json()
    if args.csv_path:
        outputs[args.csv_path] = result.to_csv()
    if args.html_path:
        from .html import search_html

        outputs[args.html_path] = search_html(result, args.model)
    print(result.summary())
    written = []
    for path, text in outputs.items():
        Path(path).write_text(text)
        written.append(path)
    if args.plot_path:
        from .plot import pareto_plot

        pareto_plot(result, args.plot_path)
        written.append(args.plot_path)
    if written:
        print("\nwrote " + ", ".join(written))
    return 0


def run_search(args: argparse.Namespace) -> int:
    from ..commands.common import model_or_spec
    from .run import search

    return _write(search(model_or_spec(args), gpus=args.gpus, **_options(args)), args)


def run_recommend(args: argparse.Namespace) -> int:
    from ..commands.common import model_or_spec
    from .run import recommend

    return _write(recommend(model_or_spec(args), rate=args.rate, max_gpus_per_instance=args.max_gpus_per_instance,
                            **_options(args)), args)


def run_cache(args: argparse.Namespace) -> int:
    from ..cache import clear, info

    found = clear() if args.action == "clear" else info()
    verb = "removed" if args.action == "clear" else "holds"
    print(f"trace cache {found.directory}: {verb} {found.entries} entries, {found.bytes / 1e6:.1f} MB")
    return 0
