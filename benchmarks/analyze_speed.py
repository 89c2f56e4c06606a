"""How fast is the analysis itself? Wall time and peak memory of tensor_cast on big models.

    python benchmarks/analyze_speed.py
    python benchmarks/analyze_speed.py --models meta-llama/Llama-3.1-405B --points 1000
    python benchmarks/analyze_speed.py --cli [--repeat 3] [--markdown]   # whole-process CLI runs
    python benchmarks/analyze_speed.py --sharded-build   # what the whole-model parameter count costs

`--cli` times what a user waits for: each `tensor-cast analyze ...` command of `CLI_COMMANDS`
run as a fresh process (import, build, capture, passes, cost, print, interpreter exit), cold
(`TENSOR_CAST_CACHE=0`: no disk trace cache), the median of `--repeat` runs, next to the median
of a bare `import tensor_cast` process and the in-process split of one run (import / build /
capture / passes / cost + print). The wall and CPU (user + sys) times are printed with the load
average they were taken under.

`--sharded-build` times, in one process per case, what a sharded analysis spends on the whole
model's parameter table (`analysis._trace`: the unsharded representative model built on meta
next to the rank's, `parameter_table` of it) after the rank's build, CPU seconds.

Each model is analyzed in a fresh subprocess (so the peak RSS is its own and no trace cache is
shared): one symbolic trace, then a prefill point (B=1, S=2048), a decode point (B=64, S=1,
C=4096) and a `--points`-point symbolic sweep of the decode step. Models the registry does not
know yet, or whose architecture is not supported yet, are reported as "not available yet" with
the reason instead of failing the run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

MODELS = ("meta-llama/Llama-3.1-405B", "deepseek-ai/DeepSeek-V3", "moonshotai/Kimi-K2-Instruct")
# (label, CLI arguments, target seconds cold: issue 8)
CLI_COMMANDS = (
    ("Qwen3-8B prefill 1x2048", ["analyze", "Qwen/Qwen3-8B", "--device", "h100-sxm", "--batch-size", "1",
                                 "--query-len", "2048"], 6.0),
    ("DeepSeek-V3 prefill 1x2048", ["analyze", "deepseek-ai/DeepSeek-V3", "--device", "h100-sxm", "--batch-size",
                                    "1", "--query-len", "2048"], 8.0),
)


def _run(argv: list[str]) -> tuple[float, float]:
    """(wall s, CPU s = user + sys) of one child process. CPU time is the figure to compare on a
    busy machine: the analysis is single-threaded, so on quiet cores wall ~ CPU."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


SHARDED_CASES = (
    ("meta-llama/Llama-3.1-70B", {"tp": 4}),
    ("deepseek-ai/DeepSeek-V3", {"tp": 8}),
    ("deepseek-ai/DeepSeek-V3", {"ep": 8, "dp": 8}),
    ("Qwen/Qwen3-30B-A3B", {"tp": 4}),
    ("Qwen/Qwen3-Next-80B-A3B-Instruct", {"tp": 4}),
)


def sharded_build_one(model: str, options: dict) -> dict:
    """Runs in a child process: CPU s of the rank's build, then of the whole model's table."""
    import tensor_cast
    from tensor_cast.deployment.config import Deployment, resolve
    from tensor_cast.deployment.sharding import rank_spec
    from tensor_cast.gc_pause import paused_gc
    from tensor_cast.memory import parameter_table
    from tensor_cast.models.build import build_representative

    spec = tensor_cast.load_model(model)
    deployment = resolve(Deployment.from_options(options), spec, tensor_cast.load_device("h100-sxm")).trace_options()
    with paused_gc():  # as analysis.trace builds
        start = time.process_time()
        build_representative(rank_spec(spec, deployment))
        rank_s = time.process_time() - start
        start = time.process_time()
        whole = parameter_table(build_representative(spec))
        whole_s = time.process_time() - start
    return {"rank_build_s": rank_s, "whole_table_s": whole_s, "parameters": sum(p.total for p in whole)}


def sharded_builds() -> int:
    from tabulate import tabulate

    rows = []
    for model, options in SHARDED_CASES:
        child = subprocess.run([sys.executable, __file__, "--sharded-one", json.dumps([model, options])],
                               capture_output=True, text=True)
        lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
        if child.returncode != 0 or not lines:
            rows.append([model, json.dumps(options), "failed", "", (child.stderr.strip().splitlines() or ["?"])[-1]])
            continue
        r = json.loads(lines[-1])
        rows.append([model, json.dumps(options), f"{r['rank_build_s']:.3f}", f"{r['whole_table_s'] * 1e3:.1f}",
                     f"{r['parameters'] / 1e9:.2f}B"])
    print(f"whole-model parameter table of a sharded analysis, CPU (load average {os.getloadavg()[0]:.1f}):")
    print(tabulate(rows, headers=["model", "deployment", "rank build s (first: imports)", "whole-model table ms",
                                  "parameters"], disable_numparse=True))
    return 0


def split_one(cli_args: list[str]) -> dict:
    """Runs in a child process: where one CLI run spends its time (in-process clocks)."""
    start = time.perf_counter()
    import contextlib
    import io

    from tensor_cast import analysis
    from tensor_cast.cli import main

    imported = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        main(cli_args)
    finished = time.perf_counter()
    seconds = next(reversed(analysis._CACHE.values())).seconds
    out = {"import_s": imported - start, **seconds}
    out["cost_and_print_s"] = finished - imported - sum(seconds.values())
    return out


def whole_process(repeat: int, markdown: bool) -> int:
    from statistics import median

    from tabulate import tabulate

    python = sys.executable
    os.environ["TENSOR_CAST_CACHE"] = "0"  # cold: every run builds and captures (children inherit it)
    imports = [_run([python, "-c", "import tensor_cast"]) for _ in range(repeat)]
    rows = []
    for label, cli_args, target in CLI_COMMANDS:
        runs = [_run([python, "-m", "tensor_cast", *cli_args]) for _ in range(repeat)]
        walls, cpus = [w for w, _ in runs], [c for _, c in runs]
        child = subprocess.run([python, __file__, "--split", json.dumps(cli_args)], capture_output=True, text=True)
        lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
        split = json.loads(lines[-1]) if lines else {}
        parts = ", ".join(f"{k.removesuffix('_s')} {v:.2f}" for k, v in split.items())
        rows.append([label, f"{median(walls):.2f}", f"{min(walls):.2f}-{max(walls):.2f}", f"{median(cpus):.2f}",
                     f"{target:.0f}", "yes" if median(walls) <= target else "no", parts])
    print(f"whole-process times, median of {repeat} ({os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f}); bare `import tensor_cast` process: "
          f"{median(w for w, _ in imports):.2f} s wall, {median(c for _, c in imports):.2f} s CPU")
    print(tabulate(rows, headers=["command", "wall s", "wall range s", "CPU s", "target s (wall)", "met",
                                  "split of one run (s, in-process)"],
                   tablefmt="github" if markdown else "simple", disable_numparse=True))
    return 0


def measure_one(model: str, device: str, points: int) -> dict:
    """Runs in the child process: timings of one model (or why it is not available)."""
    import resource

    import numpy as np

    import tensor_cast
    from tensor_cast.errors import TensorCastError

    out: dict = {"model": model}
    start = time.perf_counter()
    try:
        report = tensor_cast.analyze(model, device=device, symbolic=True)
        out["trace_s"] = time.perf_counter() - start
        start = time.perf_counter()
        prefill = report.evaluate(batch_size=1, query_len=2048)
        out["prefill_ms"] = float(prefill.total_time_s) * 1e3
        out["prefill_eval_s"] = time.perf_counter() - start
        start = time.perf_counter()
        decode = report.evaluate(batch_size=64, query_len=1, context_len=4096)
        out["decode_ms"] = float(decode.total_time_s) * 1e3
        out["ops_per_step"] = len(decode.ops)
        out["decode_eval_s"] = time.perf_counter() - start
        batch = np.linspace(1, 1024, points).round()
        context = np.linspace(1024, 131072, points).round()
        start = time.perf_counter()
        grid = report.sweep(batch_size=batch, query_len=1, context_len=context)
        out["sweep_s"] = time.perf_counter() - start
        out["sweep_points"] = int(grid["total_time_s"].size)
        out["layers"] = report.context.num_layers
        out["parameters_b"] = report.num_parameters / 1e9
    except TensorCastError as exc:
        out["unavailable"] = str(exc).splitlines()[0]
    except Exception as exc:  # an architecture that is still being built: report, do not crash the run
        out["unavailable"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    out["total_s"] = sum(v for k, v in out.items() if k.endswith("_s") and isinstance(v, float))
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--device", default="h100-sxm")
    parser.add_argument("--points", type=int, default=1000, help="points of the symbolic sweep")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # child mode: print one model's JSON
    parser.add_argument("--cli", action="store_true", help="time whole-process CLI runs (CLI_COMMANDS)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per CLI command (median)")
    parser.add_argument("--markdown", action="store_true", help="print the --cli table as markdown")
    parser.add_argument("--split", help=argparse.SUPPRESS)  # child mode: one CLI run's in-process split
    parser.add_argument("--sharded-build", action="store_true",
                        help="time the whole-model parameter table of sharded analyses (SHARDED_CASES)")
    parser.add_argument("--sharded-one", help=argparse.SUPPRESS)  # child mode: one case of --sharded-build
    args = parser.parse_args(argv)
    if args.split:
        print(json.dumps(split_one(json.loads(args.split))))
        return 0
    if args.sharded_one:
        print(json.dumps(sharded_build_one(*json.loads(args.sharded_one))))
        return 0
    if args.sharded_build:
        return sharded_builds()
    if args.cli:
        return whole_process(args.repeat, args.markdown)
    if args.one:
        print(json.dumps(measure_one(args.one, args.device, args.points)))
        return 0

    from tabulate import tabulate

    rows = []
    for model in args.models:
        child = subprocess.run([sys.executable, __file__, "--one", model, "--device", args.device,
                                "--points", str(args.points)], capture_output=True, text=True)
        lines = [ln for ln in child.stdout.splitlines() if ln.startswith("{")]
        if child.returncode != 0 or not lines:
            rows.append([model, "failed", "", "", "", "", "", (child.stderr.strip().splitlines() or ["?"])[-1][:90]])
            continue
        r = json.loads(lines[-1])
        if "unavailable" in r:
            rows.append([model, "not available yet", "", "", "", "", f"{r['peak_rss_mib']:.0f}", r["unavailable"][:90]])
            continue
        rows.append([model, f"{r['trace_s']:.1f}", f"{r['prefill_eval_s'] * 1e3:.0f}", f"{r['decode_eval_s'] * 1e3:.0f}",
                     f"{r['sweep_s'] * 1e3:.0f} ({r['sweep_points']} pts)", f"{r['total_s']:.1f}",
                     f"{r['peak_rss_mib']:.0f}",
                     f"{r['layers']} layers, {r['parameters_b']:.0f}B params; prefill {r['prefill_ms']:.0f} ms, "
                     f"decode {r['decode_ms']:.1f} ms"])
    print(f"analysis speed on this machine ({os.cpu_count()} CPUs), device {args.device}:")
    print(tabulate(rows, headers=["model", "trace s", "prefill eval ms", "decode eval ms", "sweep ms", "total s",
                                  "peak RSS MiB", "notes"], disable_numparse=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
