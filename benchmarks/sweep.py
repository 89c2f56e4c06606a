"""Batch × context sweep of one model from ONE symbolic trace: a table and a PNG plot.

    python benchmarks/sweep.py                                   # Llama-3.1-8B decode on h100-sxm
    python benchmarks/sweep.py Qwen/Qwen3-32B --query-len 1 --context 1024 8192 --out qwen.png
    python benchmarks/sweep.py --query-len 512 --batch 1 2 4 8 16  # chunked prefill

The model is traced once with B, S, C symbolic; every point of the grid is the lambdified
expression evaluated with numpy (`Report.sweep`), so a 1,000-point grid costs about as much as
one point. The plot shows step time and tokens/s against the batch size, one line per context
length, with the roofline knee marked: the batch at which the weight GEMMs' arithmetic intensity
(their FLOPs / bytes) reaches the device's ridge point (sustained GEMM FLOP/s over sustained
weight bandwidth) — below it the GEMMs are memory-bound and adding sequences is nearly free. The
table also says where the whole step's intensity crosses the ridge (decode attention reads the
KV cache at ~1 FLOP/byte, so with long contexts a decode step may never cross it).
matplotlib is optional (`pip install -e ".[plot]"`); without it only the table is printed.
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import numpy as np
from tabulate import tabulate

import tensor_cast
from tensor_cast.backends.device import DeviceProfile, load_device

DEFAULT_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
DEFAULT_CONTEXT = (1024, 4096, 16384)


def ridge_point(profile: DeviceProfile) -> float:
    """FLOPs per byte at which sustained bf16 GEMM compute equals sustained weight streaming."""
    eff = profile.efficiency
    rate, _ = profile.rate("bf16")
    flops = rate * eff.get("gemm_compute", eff.get("gemm", 1.0))
    bandwidth = profile.memory_bandwidth_gbps * 1e9 * eff.get("gemm_memory", eff.get("memory", 1.0))
    return flops / bandwidth


def knee(batch: np.ndarray, intensity: np.ndarray, ridge: float) -> float | None:
    """The (interpolated) batch size where intensity first reaches the ridge point, if inside the grid."""
    above = np.nonzero(intensity >= ridge)[0]
    if len(above) == 0:
        return None
    i = above[0]
    if i == 0:
        return float(batch[0])
    x0, x1, y0, y1 = np.log(batch[i - 1]), np.log(batch[i]), intensity[i - 1], intensity[i]
    return float(np.exp(x0 + (ridge - y0) * (x1 - x0) / (y1 - y0)))


def kind_intensity(report: tensor_cast.Report, kind: str, batch: np.ndarray, query_len: int,
                   context: np.ndarray) -> np.ndarray:
    """FLOPs / bytes of one kind of op (all layers) over the grid, from the symbolic rows."""
    import sympy

    from tensor_cast.sizes import B, C, S

    rows = [r for r in report.ops if r.kind == kind]
    flops = sympy.lambdify((B, S, C), sum((r.flops for r in rows), sympy.Integer(0)), "numpy")
    nbytes = sympy.lambdify((B, S, C), sum((r.bytes for r in rows), sympy.Integer(0)), "numpy")
    q = np.full_like(batch, query_len, dtype=float)
    return np.asarray(flops(batch, q, context), dtype=float) / np.asarray(nbytes(batch, q, context), dtype=float)


def plot(path: str, model: str, device: str, batch: np.ndarray, contexts: list[int], time_ms: np.ndarray,
         tokens: np.ndarray, knees: list[float | None], query_len: int) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('\nmatplotlib is not installed: no plot (pip install -e ".[plot]"); the table above has the numbers.')
        return False
    fig, (ax_t, ax_k) = plt.subplots(1, 2, figsize=(12, 4.5))
    shared_knee = len({None if k is None else round(k) for k in knees}) == 1
    for j, ctx in enumerate(contexts):
        line, = ax_t.plot(batch, time_ms[:, j], marker="o", label=f"context {ctx}")
        ax_k.plot(batch, tokens[:, j], marker="o", color=line.get_color(), label=f"context {ctx}")
        if knees[j] is not None and not (shared_knee and j):
            color = "gray" if shared_knee else line.get_color()
            for ax in (ax_t, ax_k):
                ax.axvline(knees[j], color=color, linestyle="--", alpha=0.7)
            ax_t.annotate(f"knee ≈ {knees[j]:.0f}", (knees[j], ax_t.get_ylim()[1]), color=color, fontsize=8,
                          ha="right", va="top", rotation=90)
    for ax, label in ((ax_t, "step time (ms)"), (ax_k, "tokens / s")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("batch size (sequences)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
    ax_k.legend(title="dashed: roofline knee (weight GEMMs)")
    kind = "decode" if query_len == 1 else f"{query_len} new tokens per sequence"
    fig.suptitle(f"{model} on {device}: {kind}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nwrote {path}")
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="meta-llama/Llama-3.1-8B")
    parser.add_argument("--device", default="h100-sxm")
    parser.add_argument("--batch", type=int, nargs="+", default=list(DEFAULT_BATCH))
    parser.add_argument("--context", type=int, nargs="+", default=list(DEFAULT_CONTEXT))
    parser.add_argument("--query-len", type=int, default=1, help="new tokens per sequence (1 = decode)")
    parser.add_argument("--cuda-graphs", default="auto")
    parser.add_argument("--out", default="sweep.png", help="PNG path (needs matplotlib)")
    args = parser.parse_args(argv)

    profile = load_device(args.device)
    start = time.perf_counter()
    report = tensor_cast.analyze(args.model, device=profile, symbolic=True, cuda_graphs=args.cuda_graphs)
    traced = time.perf_counter() - start
    batch = np.array(sorted(set(args.batch)), dtype=float)
    contexts = sorted(set(args.context))
    grid_b, grid_c = np.meshgrid(batch, np.array(contexts, dtype=float), indexing="ij")
    start = time.perf_counter()
    values = report.sweep(batch_size=grid_b, query_len=args.query_len, context_len=grid_c)
    swept = time.perf_counter() - start
    time_ms, tokens = values["total_time_s"] * 1e3, values["tokens_per_s"]
    intensity = values["total_flops"] / values["total_bytes"]
    ridge = ridge_point(profile)
    step_knees = [knee(batch, intensity[:, j], ridge) for j in range(len(contexts))]
    gemm = kind_intensity(report, "gemm", grid_b, args.query_len, grid_c)
    knees = [knee(batch, gemm[:, j], ridge) for j in range(len(contexts))]

    print(f"{args.model} on {profile.name}, {args.query_len} new token(s) per sequence; "
          f"trace {traced:.1f} s, {grid_b.size} points in {swept * 1e3:.1f} ms\n")
    headers = ["batch"] + [f"ctx {c}: ms" for c in contexts] + [f"ctx {c}: tok/s" for c in contexts]
    table = [[int(b)] + [f"{t:.2f}" for t in time_ms[i]] + [f"{k:,.0f}" for k in tokens[i]]
             for i, b in enumerate(batch)]
    print(tabulate(table, headers=headers, disable_numparse=True))
    print(f"\nridge point {ridge:.0f} FLOP/byte (sustained bf16 GEMM / sustained weight bandwidth)")
    beyond = f"beyond batch {int(batch[-1])}"
    print(tabulate([[ctx, f"{k:.0f}" if k is not None else beyond, f"{sk:.0f}" if sk is not None else beyond]
                    for ctx, k, sk in zip(contexts, knees, step_knees)],
                   headers=["context", "knee: weight GEMMs turn compute-bound at batch", "whole step at batch"]))
    plot(args.out, args.model, profile.name, batch, contexts, time_ms, tokens, knees, args.query_len)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
