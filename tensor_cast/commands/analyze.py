"""`tensor-cast analyze`: predict one forward step of a model on a device.

Checks everything it can before importing torch — argument types and choices, every output
path, the device profile, the model argument — so a bad value answers in a fraction of a second
and never after minutes of analysis; then runs `tensor_cast.analyze` and writes the output files
all-or-nothing (`tensor_cast/outputs.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

from ..errors import InvalidArgumentError, choices
from .common import (
    add_deployment_arguments,
    add_mtp_arguments,
    deployment_options,
    finite_float,
    int_at_least,
    per_layer_config,
)

HELP = "predict one forward step of a model on a device"
# one analysis, bounded: run with the cyclic GC paused (imports, build, capture, costing; about
# 1 s of CPU of a cold Qwen3-8B run on 2 cores is collections otherwise; tensor_cast/cli.py)
PAUSE_GC = True

# The accepted values, known here without importing the modules that own them (they import
# torch); tests/test_cli_startup.py checks each equals its owner's table.
GROUPINGS = ("op", "kind", "layer", "module", "node")  # tensor_cast.report.table.GROUPINGS
CUDA_GRAPH_MODES = ("auto", "always", "never")  # tensor_cast.api.CUDA_GRAPH_MODES
MLA_FORMS = ("auto", "absorbed", "expanded")  # tensor_cast.ops.mla.MLA_FORMS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="registry id (see `tensor-cast models`), local directory with config.json, or hub id")
    p.add_argument("--device", required=True, help="device profile name (see `tensor-cast devices`) or .toml path")
    p.add_argument("--engine", help="serving engine whose kernels are costed: vllm, sglang, trtllm, torch (default "
                                    "vllm); a device without that engine's calibration uses the nearest one's")
    p.add_argument("--batch-size", type=int_at_least(1), default=1, help="sequences in the step (default 1)")
    p.add_argument("--query-len", type=int_at_least(1), default=1, help="new tokens per sequence: prompt length for prefill, 1 for decode")
    p.add_argument("--context-len", type=int_at_least(0), default=0, help="tokens already in the KV cache per sequence (default 0)")
    p.add_argument("--num-hidden-layers", type=int_at_least(1), help="analyze only the first N layers")
    p.add_argument("--per-layer-config", help='JSON (or JSON file): {"3": {"intermediate_size": 8192}, "7": {"skip_attention": true}}')
    p.add_argument("--by", default="op", help=f"table grouping: {', '.join(GROUPINGS)} (default op)")
    p.add_argument("--top", type=int_at_least(1), help="show only the N most expensive rows")
    p.add_argument("--json", dest="json_path", help="write the full report as JSON")
    p.add_argument("--dump-graph", help="write the graph after every pass into this directory")
    p.add_argument("--trace", help="write a Chrome/Perfetto trace (one event per op)")
    p.add_argument("--html", dest="html_path", help="write a self-contained HTML report (per-op breakdown, timeline)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the trace cache (tensor_cast/cache/)")
    p.add_argument("--unfused", action="store_true", help="eager execution: no kernel fusion")
    p.add_argument("--cuda-graphs", default="auto", help=f"{', '.join(CUDA_GRAPH_MODES)} (default auto: decode-sized steps)")
    p.add_argument("--trust-remote-code", action="store_true", help="allow running a config's remote code")
    p.add_argument("--mla-form", default="auto",
                   help="MLA attention kernels: auto (absorbed for decode and sparse attention, expanded for "
                        "dense prefill), absorbed, expanded")
    add_mtp_arguments(p)
    p.add_argument("--allreduce-fusion", default="auto",
                   help="TP all-reduce + residual add + RMSNorm as one kernel: auto (the engine's default: on for "
                        "trtllm, off for vllm and torch, sglang per model), on, off")
    p.add_argument("--moe-skew", type=finite_float, default=0.0,
                   help="MoE routing skew: Zipf exponent of expert popularity (default 0: uniform routing)")
    add_deployment_arguments(p)


def _html(report: object) -> str:
    from ..report.html import analysis_html

    return analysis_html(report)  # type: ignore[arg-type]


def _check_choice(name: str, value: str, accepted: tuple[str, ...]) -> None:
    if value not in accepted:
        raise InvalidArgumentError(f"unknown {name} {value!r}; accepted: {choices(accepted)}")


def run(args: argparse.Namespace) -> int:
    from .. import outputs
    from ..backends.device import load_device
    from ..models.locate import check_model_argument

    if args.by not in GROUPINGS:
        raise InvalidArgumentError(f"unknown grouping {args.by!r}; accepted: {choices(GROUPINGS)}")
    _check_choice("--cuda-graphs mode", args.cuda_graphs, CUDA_GRAPH_MODES)
    _check_choice("--mla-form", args.mla_form, MLA_FORMS)
    _check_choice("--allreduce-fusion", args.allreduce_fusion, ("auto", "on", "off"))
    files: list[tuple[str, Path]] = []
    if args.json_path is not None:
        files.append(("--json", outputs.check_file(args.json_path, "--json")))
    if args.trace is not None:
        files.append(("--trace", outputs.check_file(args.trace, "--trace")))
    if args.html_path is not None:
        files.append(("--html", outputs.check_file(args.html_path, "--html")))
    outputs.check_distinct(files)
    dump_dir = outputs.check_directory(args.dump_graph, "--dump-graph") if args.dump_graph is not None else None
    layer_config = per_layer_config(args.per_layer_config)
    device = load_device(args.device)
    check_model_argument(args.model)

    from ..progress import stderr_progress, step

    with stderr_progress():
        step("loading the analysis")
        from ..api import analyze  # torch and transformers only if a trace is not in the disk cache

        report = analyze(
            args.model, device=device, batch_size=args.batch_size, query_len=args.query_len,
            context_len=args.context_len, num_hidden_layers=args.num_hidden_layers,
            per_layer_config=layer_config, fuse=not args.unfused,
            cuda_graphs=args.cuda_graphs, trust_remote_code=args.trust_remote_code,
            mla_form=args.mla_form, mtp=args.mtp, mtp_acceptance=args.mtp_acceptance, moe_skew=args.moe_skew,
            engine=args.engine, graph_dumps=dump_dir is not None, allreduce_fusion=args.allreduce_fusion,
            # graph dumps need this process's trace: a --dump-graph run neither reads nor writes the cache
            cache=not args.no_cache and dump_dir is None, **deployment_options(args),
        )
        table = report.table(by=args.by, top=args.top)
        render: dict[str, Callable[[], str]] = {"--json": lambda: report.to_json(),
                                                "--trace": lambda: json.dumps(report.chrome_trace()),
                                                "--html": lambda: _html(report)}
        contents = [(path, render[option]()) for option, path in files]
        dumps = [outputs.DumpSet(dump_dir, report.graph_dumps)] if dump_dir is not None else []
        written = outputs.write_all(contents, dumps)  # all or nothing, before anything is printed
    for warning in report.warnings:
        print(f"tensor-cast: warning: {warning}", file=sys.stderr)
    print(report.summary())
    print()
    print(table)
    if written:
        names = [str(path) for _, path in files] + ([f"{dump_dir}/ ({len(report.graph_dumps)} graphs)"] if dump_dir else [])
        print("\nwrote " + ", ".join(names))
    return 0
