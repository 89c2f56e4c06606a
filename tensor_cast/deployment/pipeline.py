"""Pipeline parallelism: the stage-to-stage transfers and the per-stage view of a report.

Owns:
- `boundary_node(...)`: the `send_recv` one pipeline stage runs to hand its activations to the
  next. Stage boundaries are not in the traced graph (a representative layer does not know where
  the stages cut), so the transfer is costed here with the same collective rule and
  communication model as any graph collective: vLLM passes `hidden_states` and `residual`
  (2 · B·S·H elements of the model dtype) between stages;
- `stages(report) -> [Stage]`: each stage's layers, time (its layers, plus the embedding on the
  first stage and the final norm / lm_head on the last, plus its outgoing transfer), and memory
  (its layers' weights and KV cache; model-level weights on the stage that runs them);
- `stage_multiplicities(report)`: per stage, how many times each costed node of the report's
  graph runs on that stage (its representative layer's real layers inside the stage; the
  prologue on the first stage, the epilogue on the last, one outgoing transfer on every stage but
  the last) — summed over the stages it equals the report's own multiplicities (checked); the
  serving simulator costs each stage of a step from it (`serving/pipeline.py`);
- `PipelineSummary`: latency of one batch through every stage (the report's total), the
  steady-state step time when the stages work on different micro-batches (the slowest stage),
  and the bubble: the fraction of that step the other stages idle (1 - mean/max stage time).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..backends.device import DeviceProfile
from ..backends.roofline import ExecutionMode, op_time
from ..costed import BOUNDARY_PHASE, CostedNode
from ..sizes import B, S
from ..units import seconds

if TYPE_CHECKING:
    from ..report.report import Report
    from .config import ResolvedDeployment

TRANSFERRED_TENSORS = 2  # hidden_states and residual (vLLM IntermediateTensors)
DTYPES = ("bfloat16", "float16", "float32")  # transferred as the model dtype; others as bfloat16


def boundary_node(hidden_size: int, dtype: str, deployment: ResolvedDeployment, profile: DeviceProfile,
                  mode: ExecutionMode) -> CostedNode:
    import torch  # the send_recv rule (a report's stage views below need no torch)

    from ..backends.formulas.registry import OpCall, TensorInfo, lookup

    op = torch.ops.tensor_cast.send_recv.default
    tensor = TensorInfo(shape=(TRANSFERRED_TENSORS, B, S, hidden_size),
                        dtype=getattr(torch, dtype if dtype in DTYPES else "bfloat16"))
    call = OpCall(op=op, args=(tensor, deployment.pp_nodes, "pp"), outputs=(tensor,))
    entry = lookup(op)
    counts = entry.rule(call)
    return CostedNode(name="pp_send_recv", op=entry.name, kind=entry.kind, module="pipeline", rep_layer=None,
                      phase=BOUNDARY_PHASE, input_shapes=(tensor.shape,), output_shapes=(tensor.shape,),
                      dtype=dtype, counts=counts, time=op_time(counts, entry.kind, profile, mode), call=call)


@dataclass(frozen=True)
class Stage:
    index: int
    layers: tuple[int, ...]
    time_s: Any
    weights_bytes: Any
    kv_cache_bytes: Any
    activation_peak_bytes: Any

    @property
    def memory_bytes(self) -> Any:
        return self.weights_bytes + self.kv_cache_bytes + self.activation_peak_bytes


@dataclass(frozen=True)
class PipelineSummary:
    stages: tuple[Stage, ...]
    latency_s: float  # one batch through every stage, transfers included
    step_s: float  # steady state with the stages on different micro-batches: the slowest stage
    bubble: float  # fraction of the step the average stage idles

    def describe(self) -> str:

        times = ", ".join(seconds(s.time_s) for s in self.stages)
        return (f"{len(self.stages)} stages [{times}]; latency {seconds(self.latency_s)}, steady-state step "
                f"{seconds(self.step_s)} (slowest stage), bubble {100 * self.bubble:.1f}%")


def _model_level_stage(name: str, tied: bool, pp: int) -> tuple[int, ...]:
    """Stages holding a model-level parameter: embeddings on the first (and, tied, the last)."""
    if "embed" in name:
        return (0, pp - 1) if tied and pp > 1 else (0,)
    return (pp - 1,)


def stage_weights(params: Sequence[Any], layer_indices: Sequence[Sequence[int]], stages: Sequence[Sequence[int]],
                  tied: bool) -> list[float]:
    out = [0.0] * len(stages)
    members = [set(s) for s in stages]
    for p in params:
        if p.rep_layer is None:
            for i in _model_level_stage(p.name, tied, len(stages)):
                out[i] += p.rank_bytes
        else:
            for i, layers in enumerate(members):
                count = len(layers.intersection(layer_indices[p.rep_layer]))
                out[i] += count * p.rank_bytes
    return out


def stage_multiplicities(report: Report) -> list[list[int]]:
    """[stage][node] -> how many times `report`'s costed node runs on that stage (module docstring)."""
    deployment = report.context.deployment
    plan = deployment.stages if deployment is not None else (tuple(range(report.context.num_layers)),)
    last = len(plan) - 1
    out: list[list[int]] = []
    for i, layers in enumerate(plan):
        members = set(layers)
        row = []
        for node in report._costed.nodes:
            if node.rep_layer is not None:
                row.append(len(members.intersection(report.context.layer_indices[node.rep_layer])))
            elif node.phase == BOUNDARY_PHASE:
                row.append(1 if i < last else 0)
            else:
                row.append(1 if (i == 0 if node.phase == "prologue" else i == last) else 0)
        out.append(row)
    totals = [sum(column) for column in zip(*out, strict=True)]
    if totals != list(report._mult):
        raise AssertionError(f"pipeline stages cover the graph's nodes {totals} times, the report {report._mult}")
    return out


def stages(report: Report) -> list[Stage]:
    deployment = report.context.deployment
    plan = deployment.stages if deployment is not None else (tuple(range(report.context.num_layers)),)
    last = len(plan) - 1
    stage_of = {layer: i for i, layers in enumerate(plan) for layer in layers}
    times = [0.0] * len(plan)
    kv = [0.0] * len(plan)
    boundary = 0
    for row in report.ops:
        if row.layer is not None:
            i = stage_of[row.layer]
            kv[i] += row.state_bytes
        elif row.phase == BOUNDARY_PHASE:
            i, boundary = boundary, boundary + 1
        else:
            i = 0 if row.phase == "prologue" else last
            kv[i] += row.state_bytes
        times[i] += row.time_s
    weights = stage_weights(report.context.params, report.context.layer_indices, plan,
                            report.context.tied_embeddings)
    activation = report.activation_peak_bytes
    return [Stage(index=i, layers=tuple(layers), time_s=times[i], weights_bytes=weights[i], kv_cache_bytes=kv[i],
                  activation_peak_bytes=activation) for i, layers in enumerate(plan)]


def summary(report: Report) -> PipelineSummary:
    parts = stages(report)
    times = [float(s.time_s) for s in parts]
    step = max(times)
    return PipelineSummary(stages=tuple(parts), latency_s=float(report.total_time_s), step_s=step,
                           bubble=1 - (sum(times) / len(times)) / step if step else 0.0)
