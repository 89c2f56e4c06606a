"""The Pareto plot as PNG or SVG with matplotlib (the `plot` extra): every simulated configuration
per device, the SLO-meeting ones filled, the frontier as a line."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgumentError
from .results import SearchResult


def pareto_plot(result: SearchResult, path: str | Path) -> Path:
    out = Path(path)
    if out.suffix.lower() not in (".png", ".svg"):
        raise InvalidArgumentError(f"--plot {str(path)!r}: accepted file types: .png, .svg")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise InvalidArgumentError("--plot needs matplotlib: pip install 'tensor-cast[plot]'") from None
    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=110)
    for device in result.devices:
        rows = [r for r in result.rows if r.candidate.device == device]
        ok = [r for r in rows if result.slo.met(r.metrics)]
        miss = [r for r in rows if not result.slo.met(r.metrics)]
        line = ax.scatter([r.metrics.tokens_per_s_per_user for r in ok], [r.metrics.tokens_per_s_per_gpu for r in ok],
                          s=14, label=device)
        ax.scatter([r.metrics.tokens_per_s_per_user for r in miss], [r.metrics.tokens_per_s_per_gpu for r in miss],
                   s=14, facecolors="none", edgecolors=line.get_facecolor(), alpha=0.6)
    ax.plot([r.metrics.tokens_per_s_per_user for r in result.frontier],
            [r.metrics.tokens_per_s_per_gpu for r in result.frontier], color="black", lw=1.2, label="frontier (SLOs met)")
    ax.set_xlabel("output tokens/s per user (1 / TPOT)")
    ax.set_ylabel("output tokens/s per GPU")
    ax.set_title(f"{result.model}: ISL {result.isl} / OSL {result.osl} ({result.engine})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
