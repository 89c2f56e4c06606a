"""One model, several deployments / devices / execution modes: a comparison table.

    python benchmarks/compare_deployments.py                         # Llama-3.1-8B, built-in configs
    python benchmarks/compare_deployments.py Qwen/Qwen3-32B --prefill 1 4096 --decode 128 8192
    python benchmarks/compare_deployments.py --config "H200 TP2 fp8; device=h200; tp=2; quant=fp8"
    python benchmarks/compare_deployments.py --preset deepseek      # DeepSeek-V3: TP8 vs EP8+DP8 vs 16xH100

For each configuration and workload (a prefill and a decode step) it prints step time,
tokens/s, memory per GPU (weights + KV cache + activation peak), whether that fits the device (and
the largest batch that would), the dominant bound and the top ops. Calibrated profiles (see
`fidelity.py`) give the measured accuracy; the others carry transferred efficiencies. A configuration is one line in
`CONFIGS` (or one `--config` argument): a label, a device, the execution options and any
deployment keywords `tensor_cast.analyze` accepts (parallelism, quantization). Configurations
whose device or deployment keyword does not exist yet are listed as "not available yet".
"""

from __future__ import annotations

import argparse
import os
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from tabulate import tabulate

import tensor_cast
from tensor_cast.errors import TensorCastError


@dataclass(frozen=True)
class Config:
    label: str
    device: str = "h100-sxm"
    fuse: bool = True
    cuda_graphs: str = "auto"
    deployment: Mapping[str, Any] = field(default_factory=dict)


# One line per configuration. Deployment keywords are passed to tensor_cast.analyze unchanged.
CONFIGS: tuple[Config, ...] = (
    Config("H100 engine (fused kernels, CUDA graphs <= 512 tokens)"),
    Config("H100 eager HF modules (unfused, no graphs)", fuse=False, cuda_graphs="never"),
    Config("H100 FP8 weights", deployment={"quant": "fp8"}),
    Config("H100 FP8 weights + FP8 KV cache", deployment={"quant": "fp8", "kv_cache_dtype": "fp8"}),
    Config("2xH100 TP=2", deployment={"tp": 2}),
    Config("2xH100 DP=2", deployment={"dp": 2}),
    Config("H200 engine", device="h200"),
    Config("B200 engine", device="b200"),
    Config("A100 engine", device="a100-80gb-sxm"),
    Config("MI300X engine", device="mi300x"),
)


# Presets: (model, prefill (batch, prompt), decode (batch, context), configurations).
PRESETS: dict[str, tuple[str, tuple[int, int], tuple[int, int], tuple[Config, ...]]] = {
    "deepseek": ("deepseek-ai/DeepSeek-V3", (16, 2048), (256, 4096), (  # FP8 block: the checkpoint's own format
        Config("8xH100 TP8", deployment={"tp": 8}),
        Config("8xH100 attention-DP8 + EP8", deployment={"dp": 8, "ep": 8}),
        Config("8xH200 TP8", device="h200", deployment={"tp": 8}),
        Config("8xH200 TP8 + EP8", device="h200", deployment={"tp": 8, "ep": 8}),
        Config("8xH200 attention-DP8 + EP8", device="h200", deployment={"dp": 8, "ep": 8}),
        Config("16xH100 attention-DP16 + EP16 (2 nodes)", deployment={"dp": 16, "ep": 16}),
        Config("8xB200 attention-DP8 + EP8", device="b200", deployment={"dp": 8, "ep": 8}),
    )),
    # Qwen3-235B-A22B-FP8, the published FP8 checkpoint: 128 x 128 blocks (its model card)
    "qwen3-235b": ("Qwen/Qwen3-235B-A22B", (16, 2048), (256, 4096), (
        Config("8xH200 TP8 fp8_block", device="h200", deployment={"tp": 8, "quant": "fp8_block"}),
        Config("8xH200 TP8 + EP8 fp8_block", device="h200", deployment={"tp": 8, "ep": 8, "quant": "fp8_block"}),
        Config("8xH200 attention-DP8 + EP8 fp8_block", device="h200",
               deployment={"dp": 8, "ep": 8, "quant": "fp8_block"}),
        Config("8xH100 TP8 fp8_block", deployment={"tp": 8, "quant": "fp8_block"}),
    )),
}


@dataclass(frozen=True)
class Workload:
    name: str
    batch_size: int
    query_len: int
    context_len: int


def parse_config(text: str) -> Config:
    """'label; device=h200; tp=2; fuse=false; cuda_graphs=never' -> Config."""
    label, *pairs = [p.strip() for p in text.split(";")]
    options: dict[str, Any] = {}
    for pair in filter(None, pairs):
        key, _, value = pair.partition("=")
        options[key.strip()] = _value(value.strip())
    return Config(label=label, device=str(options.pop("device", "h100-sxm")), fuse=bool(options.pop("fuse", True)),
                  cuda_graphs=str(options.pop("cuda_graphs", "auto")), deployment=options)


def _value(text: str) -> Any:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def dominant_bound(report: tensor_cast.Report) -> str:
    by_bound: dict[str, float] = defaultdict(float)
    for row in report.ops:
        by_bound[row.bound] += float(row.time_s)
    bound, time = max(by_bound.items(), key=lambda kv: kv[1])
    return f"{bound} ({100 * time / float(report.total_time_s):.0f}%)"


def top_ops(report: tensor_cast.Report, n: int = 3) -> str:
    by_op: dict[str, float] = defaultdict(float)
    for row in report.ops:
        by_op[row.op] += float(row.time_s)
    total = float(report.total_time_s)
    ranked = sorted(by_op.items(), key=lambda kv: -kv[1])[:n]
    return ", ".join(f"{op.removeprefix('tensor_cast.')} {100 * t / total:.0f}%" for op, t in ranked)


def run(model: str, config: Config, workload: Workload) -> list[str]:
    try:
        report = tensor_cast.analyze(model, device=config.device, batch_size=workload.batch_size,
                                     query_len=workload.query_len, context_len=workload.context_len,
                                     fuse=config.fuse, cuda_graphs=config.cuda_graphs, **dict(config.deployment))
    except TensorCastError as exc:
        return [config.label, workload.name, "not available yet", "", "", "", "", str(exc).splitlines()[0][:80]]
    memory_gib = float(report.memory.total_bytes) / 2**30
    fit = report.fit
    fits = f"yes (max batch {fit.max_batch_size})" if fit.fits else "no"
    return [config.label, workload.name, f"{float(report.total_time_s) * 1e3:.2f}",
            f"{float(report.tokens_per_s):,.0f}", f"{memory_gib:.1f}", fits, dominant_bound(report), top_ops(report)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="meta-llama/Llama-3.1-8B")
    parser.add_argument("--prefill", type=int, nargs=2, default=(1, 2048), metavar=("BATCH", "PROMPT"))
    parser.add_argument("--decode", type=int, nargs=2, default=(64, 4096), metavar=("BATCH", "CONTEXT"))
    parser.add_argument("--config", action="append", default=[],
                        help='extra configuration: "label; device=h200; tp=2; fuse=false; cuda_graphs=never"')
    parser.add_argument("--only", action="store_true", help="only the --config configurations")
    parser.add_argument("--preset", choices=sorted(PRESETS), help="a model with its deployment comparison")
    args = parser.parse_args(argv)

    base = list(CONFIGS)
    if args.preset:
        args.model, args.prefill, args.decode, preset = PRESETS[args.preset]
        base = list(preset)
    configs = [parse_config(c) for c in args.config] + ([] if args.only else base)
    workloads = (Workload(f"prefill B={args.prefill[0]} S={args.prefill[1]}", args.prefill[0], args.prefill[1], 0),
                 Workload(f"decode B={args.decode[0]} ctx={args.decode[1]}", args.decode[0], 1, args.decode[1]))
    from tensor_cast.progress import stderr_progress, step

    points = [(workload, config) for workload in workloads for config in configs]
    rows = []
    with stderr_progress():  # on a terminal only: this takes tens of seconds
        for i, (workload, config) in enumerate(points, 1):
            step(f"[{i}/{len(points)}] {config.label}, {workload.name}")
            rows.append(run(args.model, config, workload))
    print(f"{args.model}: one step per workload\n")
    print(tabulate(rows, headers=["configuration", "workload", "step ms", "tokens/s", "memory/GPU GiB", "fits",
                                  "bound (time share)", "top ops"], disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
