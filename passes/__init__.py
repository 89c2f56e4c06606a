"""The rewrite passes and the pipeline that runs them, declared once, in order.

Each pass is a function `GraphModule -> GraphModule` (one file each, named `<verb>_<object>`),
whose docstring states what it matches, what it produces and the invariant after it runs.
`build_pipeline(options)` returns the ordered passes for an execution model;
`run_pipeline(gm, passes, dump_dir)` runs them, writing the graph after each pass when asked
(`00_capture.txt`, `01_eliminate_dead_code.txt`, ...) and naming the failing pass and the ones
that ran before it on error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from torch import fx

from .eliminate_dead_code import eliminate_dead_code
from .eliminate_noop_views import eliminate_noop_views
from .fold_rotary_tables import fold_rotary_tables
from .fuse_activation_mul import fuse_activation_mul
from .fuse_add_rms_norm import fuse_add_rms_norm
from .fuse_linears import fuse_linears
from .fuse_rms_norm import fuse_rms_norm
from .fuse_rope import fuse_rope

PassFn = Callable[[fx.GraphModule], fx.GraphModule]


@dataclass(frozen=True)
class Pass:
    name: str
    run: PassFn
    fusion: bool = False  # part of the optimized-engine execution model (skipped when unfused)


# The order matters where a comment says why.
PIPELINE: tuple[Pass, ...] = (
    Pass("eliminate_dead_code", eliminate_dead_code),  # first: mask helpers left unused by the no-op mask
    Pass("fold_rotary_tables", fold_rotary_tables, fusion=True),  # before fuse_rope, whose tables it produces
    Pass("fuse_rope", fuse_rope, fusion=True),
    Pass("fuse_rms_norm", fuse_rms_norm, fusion=True),
    Pass("fuse_add_rms_norm", fuse_add_rms_norm, fusion=True),  # after fuse_rms_norm: matches its op
    Pass("fuse_linears", fuse_linears, fusion=True),
    Pass("fuse_activation_mul", fuse_activation_mul, fusion=True),
    Pass("eliminate_noop_views", eliminate_noop_views),
    Pass("eliminate_dead_code", eliminate_dead_code),  # last: whatever the rewrites orphaned
)


class PassError(RuntimeError):
    pass


def build_pipeline(*, fuse: bool = True) -> tuple[Pass, ...]:
    return tuple(p for p in PIPELINE if fuse or not p.fusion)


def run_pipeline(gm: fx.GraphModule, passes: Sequence[Pass], dump_dir: str | Path | None = None,
                 dump: Callable[[fx.GraphModule], str] | None = None) -> fx.GraphModule:
    directory = Path(dump_dir) if dump_dir is not None else None
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
        render = dump or (lambda g: str(g.graph))
        (directory / "00_capture.txt").write_text(render(gm))
    done: list[str] = []
    for index, p in enumerate(passes, start=1):
        try:
            gm = p.run(gm)
        except Exception as exc:
            raise PassError(f"pass {p.name} failed after {done or 'no passes'}: {type(exc).__name__}: {exc}") from exc
        done.append(p.name)
        if directory is not None:
            (directory / f"{index:02d}_{p.name}.txt").write_text(render(gm))
    return gm


__all__ = ["PIPELINE", "Pass", "PassError", "build_pipeline", "run_pipeline"]
