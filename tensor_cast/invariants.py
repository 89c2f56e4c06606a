"""Invariants every analysis checks before it gives a report.

Owns `check_layer_coverage(costed, rep)`: each representative layer owns costed ops (a layer
whose attention and MLP are both skipped is the one layer allowed to own none), and the real
layers the representative ones stand for are exactly the spec's layers, each once. A violation
means the graph lost track of where its ops come from (a tracer or transformers change, say):
costing on would undercount silently, so it is a `CaptureError` naming the model, the layers
missing and the torch / transformers versions — never a report.
"""

from __future__ import annotations

from .costing import CostedGraph
from .errors import CaptureError
from .models.build import RepresentativeModel
from .versions import versions_line


def _ranges(indices: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out: list[str] = []
    for i in sorted(indices):
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def check_layer_coverage(costed: CostedGraph, rep: RepresentativeModel) -> None:
    owned = {n.rep_layer for n in costed.nodes if n.rep_layer is not None}
    empty_allowed = {i for i, kind in enumerate(rep.kinds)
                     if kind.attention.kind == "none" and kind.mlp.kind == "none"}
    missing_rep = [i for i in range(len(rep.kinds)) if i not in owned and i not in empty_allowed]
    covered = [j for indices in rep.layer_indices for j in indices]
    num_layers = rep.spec.num_layers
    uncovered = sorted(set(range(num_layers)) - set(covered))
    stray = sorted({j for j in covered if not 0 <= j < num_layers} | {j for j in covered if covered.count(j) > 1})
    if not missing_rep and not uncovered and not stray:
        return
    missing_real = sorted({j for i in missing_rep for j in rep.layer_indices[i]} | set(uncovered))
    problem = [f"layers {_ranges(missing_real)} of {num_layers} own no costed op"] if missing_real else []
    if stray:
        problem.append(f"layers {_ranges(stray)} are counted more than once or do not exist")
    raise CaptureError(f"{rep.spec.name}: {'; '.join(problem)} — the captured graph lost its layer attribution, "
                       f"so the report would undercount ({versions_line()})")
