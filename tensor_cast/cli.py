"""The `tensor-cast` command line: `analyze`, `models`, `devices`.

Owns argument parsing and output files. User errors (`TensorCastError`) print one line on
stderr and exit with status 2; `--debug` keeps the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import InvalidArgumentError, TensorCastError


def _per_layer_config(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    source = Path(text).read_text() if Path(text).is_file() else text
    try:
        data = json.loads(source)
    except json.JSONDecodeError as exc:
        raise InvalidArgumentError(f"--per-layer-config is neither a JSON object nor a JSON file: {exc.msg}") from None
    if not isinstance(data, dict):
        raise InvalidArgumentError("--per-layer-config must be a JSON object {layer: {field: value}}")
    return data


def _add_analyze(sub: Any) -> None:
    p = sub.add_parser("analyze", help="predict one forward step of a model on a device")
    p.add_argument("model", help="registry id (see `tensor-cast models`), local directory with config.json, or hub id")
    p.add_argument("--device", required=True, help="device profile name (see `tensor-cast devices`) or .toml path")
    p.add_argument("--batch-size", type=int, default=1, help="sequences in the step (default 1)")
    p.add_argument("--query-len", type=int, default=1, help="new tokens per sequence: prompt length for prefill, 1 for decode")
    p.add_argument("--context-len", type=int, default=0, help="tokens already in the KV cache per sequence (default 0)")
    p.add_argument("--num-hidden-layers", type=int, help="analyze only the first N layers")
    p.add_argument("--per-layer-config", help='JSON (or JSON file): {"3": {"intermediate_size": 8192}, "7": {"skip_attention": true}}')
    p.add_argument("--by", default="op", help="table grouping: op, kind, layer, module, node (default op)")
    p.add_argument("--top", type=int, help="show only the N most expensive rows")
    p.add_argument("--json", dest="json_path", help="write the full report as JSON")
    p.add_argument("--dump-graph", help="write the graph after every pass into this directory")
    p.add_argument("--trace", help="write a Chrome/Perfetto trace (one event per op)")
    p.add_argument("--html", dest="html_path", help="write a self-contained HTML report (per-op breakdown, timeline)")
    p.add_argument("--unfused", action="store_true", help="eager execution: no kernel fusion")
    p.add_argument("--cuda-graphs", default="auto", help="auto (decode-sized steps), always, never")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a config's remote code")
    p.add_argument("--mla-form", default="auto",
                   help="MLA attention kernels: auto (absorbed for decode, expanded for prefill), absorbed, expanded")
    p.add_argument("--mtp", type=int, default=0,
                   help="MTP draft tokens per step (speculative decoding; models shipping MTP layers); default 0")
    p.add_argument("--mtp-acceptance", type=float,
                   help="per-draft acceptance rate in (0, 1] for the time per output token (default 0.85)")
    p.add_argument("--moe-skew", type=float, default=0.0,
                   help="MoE routing skew: Zipf exponent of expert popularity (default 0: uniform routing)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the trace cache (tensor_cast/cache/)")
    _add_deployment(p)


def _add_deployment(p: Any) -> None:
    """Deployment flags (tensor_cast/deployment/): parallelism, quantization, cluster shape."""
    from .deployment.quantization import KV_CACHE_DTYPES, accepted_quant

    g = p.add_argument_group("deployment (world size = tp x dp x pp; times and memory are per GPU)")
    g.add_argument("--tp", type=int, help="tensor-parallel degree (default 1)")
    g.add_argument("--ep", type=int, help="expert-parallel degree: 1 or tp x dp, MoE experts split whole over the "
                                         "tp x dp GPUs of a stage; --tp 1 --dp 8 --ep 8 is attention DP8 + MoE EP8 "
                                         "(default 1)")
    g.add_argument("--dp", type=int, help="data-parallel replicas; --batch-size is split over them (default 1)")
    g.add_argument("--pp", type=int, help="pipeline-parallel stages (default 1)")
    g.add_argument("--quant", help=f"weight/activation quantization: {', '.join(accepted_quant())} "
                                   "(default: the checkpoint's quantization_config, else none)")
    g.add_argument("--kv-cache-dtype", help=f"KV cache dtype: {', '.join(KV_CACHE_DTYPES)} (default: the model dtype)")
    g.add_argument("--nodes", type=int, help="nodes (nodes x gpus-per-node must equal the world size)")
    g.add_argument("--gpus-per-node", type=int, help="GPUs per node (default: the device profile's)")
    g.add_argument("--quantize-lm-head", action="store_true", help="quantize the lm_head too (excluded by default)")
    g.add_argument("--quantize-router", action="store_true", help="quantize MoE routers too (excluded by default)")
    g.add_argument("--memory-utilization", type=float,
                   help="fraction of device memory the engine may use (default 0.9, vLLM's)")


DEPLOYMENT_FLAGS = ("tp", "ep", "dp", "pp", "quant", "kv_cache_dtype", "nodes", "gpus_per_node", "memory_utilization")


def _deployment(args: argparse.Namespace) -> dict[str, Any]:
    options = {name: getattr(args, name) for name in DEPLOYMENT_FLAGS if getattr(args, name) is not None}
    for flag in ("quantize_lm_head", "quantize_router"):
        if getattr(args, flag):
            options[flag] = True
    return options


def _analyze(args: argparse.Namespace) -> int:
    from .api import analyze

    report = analyze(
        args.model, device=args.device, batch_size=args.batch_size, query_len=args.query_len,
        context_len=args.context_len, num_hidden_layers=args.num_hidden_layers,
        per_layer_config=_per_layer_config(args.per_layer_config), fuse=not args.unfused,
        cuda_graphs=args.cuda_graphs, dump_graph=args.dump_graph, trust_remote_code=args.trust_remote_code,
        mla_form=args.mla_form, mtp=args.mtp, mtp_acceptance=args.mtp_acceptance, moe_skew=args.moe_skew,
        cache=not args.no_cache, **_deployment(args),
    )
    table = report.table(by=args.by, top=args.top)  # validates --by before any file is written
    print(report.summary())
    print()
    print(table)
    written = []
    if args.json_path:
        Path(args.json_path).write_text(report.to_json())
        written.append(args.json_path)
    if args.trace:
        Path(args.trace).write_text(json.dumps(report.chrome_trace()))
        written.append(args.trace)
    if args.html_path:
        from .report.html import analysis_html

        Path(args.html_path).write_text(analysis_html(report))
        written.append(args.html_path)
    if args.dump_graph:
        written.append(args.dump_graph + "/")
    if written:
        print("\nwrote " + ", ".join(written))
    return 0


def _models(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .models import registry
    from .models.loader import load_spec

    rows = []
    for entry in registry.all_entries():
        spec = load_spec(entry.id)
        kinds = "; ".join(f"{len(ix)}x {k.describe()}" for k, ix in spec.layer_kinds())
        size = f"{entry.public_parameters / 1e9:.2f}B" if entry.public_parameters else "?"
        rows.append((entry.id, spec.model_type, size, spec.num_layers, kinds))
    print(tabulate(rows, headers=("id", "model_type", "params (public)", "layers", "layer kinds"), disable_numparse=True))
    return 0


def _devices(args: argparse.Namespace) -> int:
    from tabulate import tabulate

    from .backends.device import builtin_profiles

    seen = {p.name: p for p in builtin_profiles().values()}
    rows = [(p.name, p.display_name, f"{p.compute['bf16_tflops']:.0f}", f"{p.compute['fp8_tflops']:.0f}",
             f"{p.memory_bandwidth_gbps:.0f}", f"{p.memory_capacity_gib:.0f}", ", ".join(p.aliases))
            for p in sorted(seen.values(), key=lambda p: p.name)]
    print(tabulate(rows, headers=("name", "device", "bf16 TFLOP/s", "fp8 TFLOP/s", "HBM GB/s", "HBM GiB", "aliases"),
                   disable_numparse=True))
    return 0


class _VersionAction(argparse.Action):
    """`--version`: the three versions, and a warning on stderr for each outside the tested window."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        from .versions import TESTED_WINDOW, outside_window, versions

        print(" ".join(f"{name} {version}" for name, version in versions().items()))
        print("tested window: " + ", ".join(f"{name} {low} to {high}" for name, (low, high) in TESTED_WINDOW.items()))
        for warning in outside_window():
            print(f"tensor-cast: warning: {warning}", file=sys.stderr)
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tensor-cast", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--debug", action="store_true", help="show tracebacks of user errors")
    parser.add_argument("--version", action=_VersionAction,
                        help="print tensor_cast, torch and transformers versions (warns outside the tested window)")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_analyze(sub)
    from .serving.cli import add_serve

    add_serve(sub, _add_deployment)
    sub.add_parser("models", help="list the offline registry of public architectures")
    sub.add_parser("devices", help="list the built-in device profiles")
    from .search.cli import register as register_search

    COMMANDS.update(register_search(sub))  # search, recommend, cache (tensor_cast/search/cli.py)
    return parser


def _serve(args: argparse.Namespace) -> int:
    from .serving.cli import run_serve

    return run_serve(args, _deployment(args))


COMMANDS: dict[str, Any] = {"analyze": _analyze, "models": _models, "devices": _devices, "serve": _serve}


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except TensorCastError as exc:
        if args.debug:
            raise
        print(f"tensor-cast: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
