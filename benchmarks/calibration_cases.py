"""Measured rows <-> the kernels tensor_cast costs for them: the vocabulary calibration and fidelity share.

Owns the measurement CSV format (`Row`, `read_rows`, `write_rows`: the columns of
`shared/calibration/h100/h100_microbench.csv`, which `calibrate_device.py` also writes) and
`build_cases(rows)`: for every row, the op calls tensor_cast would cost for that kernel, built
with tensor_cast's own cost rules on meta tensors, the op class it is reported under, the
cross-validation group it belongs to and the fitting stage that uses it. `Case.predict(profile)`
times them with the roofline backend inside a CUDA graph, as the rows were measured.

It does not fit anything (`calibration_fit.py`) and does not read files it is not given.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

import tensor_cast.ops  # noqa: F401  (the custom ops exist before their rules are looked up)
from tensor_cast.backends.counts import Counts
from tensor_cast.backends.device import DeviceProfile
from tensor_cast.backends.formulas import OpCall, lookup, tensor_infos
from tensor_cast.backends.roofline import ExecutionMode, op_time

COLUMNS = ("section", "name", "params", "dtype", "median_us", "p10_us", "p90_us", "extra")
IN_GRAPH = ExecutionMode(cuda_graphs="always")  # rows are timed inside CUDA graphs
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32, "fp8": torch.float8_e4m3fn,
          "u8": torch.uint8}
aten, tc = torch.ops.aten, torch.ops.tensor_cast


@dataclass(frozen=True)
class Row:
    section: str
    name: str
    params: dict[str, Any]
    dtype: str
    median_us: float
    p10_us: float = 0.0
    p90_us: float = 0.0
    extra: str = ""

    @property
    def key(self) -> tuple[str, str, str, str]:
        return self.section, self.name, json.dumps(self.params, sort_keys=True), self.dtype


def read_rows(path: str | Path) -> list[Row]:
    with open(path, newline="") as handle:
        return [Row(section=r["section"], name=r["name"], params=json.loads(r["params"] or "{}"), dtype=r["dtype"],
                    median_us=float(r["median_us"]), p10_us=float(r["p10_us"] or 0), p90_us=float(r["p90_us"] or 0),
                    extra=r.get("extra") or "") for r in csv.DictReader(handle)]


def write_rows(path: str | Path, rows: Iterable[Row]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for r in rows:
            writer.writerow([r.section, r.name, json.dumps(r.params, sort_keys=True), r.dtype, f"{r.median_us:.3f}",
                             f"{r.p10_us:.3f}", f"{r.p90_us:.3f}", r.extra])


def dedupe(rows: Sequence[Row]) -> list[Row]:
    """Rows measured more than once with the same parameters become one (median of the medians)."""
    groups: dict[tuple[str, str, str, str], list[Row]] = {}
    for r in rows:
        groups.setdefault(r.key, []).append(r)
    return [Row(g[0].section, g[0].name, g[0].params, g[0].dtype, statistics.median(x.median_us for x in g),
                g[0].p10_us, g[0].p90_us, g[0].extra) for g in groups.values()]


# ---- one kernel = one op call through tensor_cast's rules ---------------------------------------
@dataclass(frozen=True)
class Op:
    call: OpCall
    counts: Counts
    kind: str




def meta_op(op: Any, *args: Any, **kwargs: Any) -> tuple[Op, Any]:
    """Run `op` on meta tensors and cost it with its registered rule: (Op, the meta result)."""
    entry = lookup(op)
    result = op(*args, **kwargs)
    outputs = result if isinstance(result, (list, tuple)) else (result,)
    call = OpCall(op=op, args=tensor_infos(args), kwargs=tensor_infos(kwargs),
                  outputs=tuple(tensor_infos(o) for o in outputs if isinstance(o, torch.Tensor)))
    return Op(call=call, counts=entry.rule(call), kind=entry.kind), result


def meta(*shape: int, dtype: str | torch.dtype = "bf16") -> torch.Tensor:
    return torch.empty(shape, dtype=DTYPES[dtype] if isinstance(dtype, str) else dtype, device="meta")


@dataclass(frozen=True)
class Case:
    row: Row
    cls: str  # op class it is reported under
    group: str  # cross-validation group (rows fitted or held out together)
    stage: str  # the fitting stage that uses it ("" = evaluation only)
    ops: tuple[Op, ...] = field(repr=False)
    mode: ExecutionMode = field(default=IN_GRAPH, repr=False)  # how the row's kernels were launched

    @property
    def measured_s(self) -> float:
        return self.row.median_us * 1e-6

    def predict(self, profile: DeviceProfile, mode: ExecutionMode | None = None) -> float:
        mode = self.mode if mode is None else mode
        return float(sum(float(op_time(o.counts, o.kind, profile, mode).time_s) for o in self.ops))


# ---- the row vocabulary -------------------------------------------------------------------------
def gemm_range(m: int) -> str:
    for low, high in ((1, 8), (16, 128), (256, 1024), (2048, 16384)):
        if m <= high:
            return f"{low}-{high}"
    return ">16384"


def _gemm(row: Row) -> tuple[str, str, list[Op]]:
    p = row.params
    op, _ = meta_op(aten.linear.default, meta(p["M"], p["K"], dtype=row.dtype), meta(p["N"], p["K"], dtype=row.dtype))
    return f"gemm {row.dtype} M {gemm_range(p['M'])}", row.name, [op]


def _ceiling(row: Row) -> tuple[str, str, list[Op]]:
    if row.name == "d2d_copy":
        op, _ = meta_op(aten.clone.default, meta(row.params["bytes"], dtype="u8"))
        return "ceiling copy", "ceiling", [op]
    m = row.params["m"]
    op, _ = meta_op(aten.mm.default, meta(m, m, dtype=row.dtype), meta(m, m, dtype=row.dtype))
    return f"ceiling gemm {row.dtype}", "ceiling", [op]


def _attention(row: Row) -> tuple[str, str, list[Op]]:
    p = row.params
    d, dv = p["d"], p.get("dv", p["d"])
    decode = "L" in p
    q_len, k_len = (1, p["L"]) if decode else (p["S"], p["S"])
    q = meta(p["B"], p["hq"], q_len, d)
    k, v = meta(p["B"], p["hkv"], k_len, d), meta(p["B"], p["hkv"], k_len, dv)
    op, _ = meta_op(aten.scaled_dot_product_attention.default, q, k, v, is_causal=not decode,
                    enable_gqa=p["hq"] != p["hkv"])
    return f"attention {'decode' if decode else 'prefill'}", f"{row.name} {json.dumps(p, sort_keys=True)}", [op]


def _rms_norm_eager(t: int, h: int) -> list[Op]:
    """transformers' LlamaRMSNorm as eager torch runs it: 8 kernels."""
    ops = []
    x, weight = meta(t, h), meta(h)
    o, xf = meta_op(aten._to_copy.default, x, dtype=torch.float32)
    ops.append(o)
    o, sq = meta_op(aten.pow.Tensor_Scalar, xf, 2)
    ops.append(o)
    o, var = meta_op(aten.mean.dim, sq, [-1], True)
    ops.append(o)
    o, var = meta_op(aten.add.Tensor, var, meta(dtype=torch.float32))
    ops.append(o)
    o, inv = meta_op(aten.rsqrt.default, var)
    ops.append(o)
    o, normed = meta_op(aten.mul.Tensor, xf, inv)
    ops.append(o)
    o, back = meta_op(aten._to_copy.default, normed, dtype=torch.bfloat16)
    ops.append(o)
    o, _ = meta_op(aten.mul.Tensor, weight, back)
    ops.append(o)
    return ops


def _elementwise(row: Row) -> tuple[str, str, list[Op]]:
    p, name = row.params, row.name
    t, h = p["T"], p.get("H", p.get("I"))
    size = f"{name} H{h}" if "H" in p else f"{name} I{h}"
    if name == "rmsnorm_compiled":
        return "norm (fused)", size, [meta_op(tc.rms_norm.default, meta(t, h), meta(h), 1e-5)[0]]
    if name == "add_rmsnorm_compiled":
        return "norm (fused)", size, [meta_op(tc.add_rms_norm.default, meta(t, h), meta(t, h), meta(h), 1e-5)[0]]
    if name == "rmsnorm_eager":
        return "norm (eager, 8 kernels)", size, _rms_norm_eager(t, h)
    if name == "residual_add":
        return "elementwise add", size, [meta_op(aten.add.Tensor, meta(t, h), meta(t, h))[0]]
    if name == "silu_mul_compiled":
        return "activation (fused)", size, [meta_op(tc.act_mul.default, meta(t, h), meta(t, h), "silu")[0]]
    if name == "silu_mul_eager":
        silu, out = meta_op(aten.silu.default, meta(t, h))
        return "activation (eager, 2 kernels)", size, [silu, meta_op(aten.mul.Tensor, out, meta(t, h))[0]]
    if name == "embedding":
        return "embedding", size, [meta_op(F.embedding, meta(t, dtype=torch.int64), meta(p["V"], h))[0]]
    raise KeyError(name)


def _argmax(row: Row) -> tuple[str, str, list[Op]]:
    op, _ = meta_op(aten.argmax.default, meta(row.params["T"], row.params["V"]), -1)
    return "argmax (sampling)", row.name, [op]


# (section, name or "*") -> builder; the stage that fits from it
BUILDERS: dict[tuple[str, str], tuple[Callable[[Row], tuple[str, str, list[Op]]], str]] = {
    ("ceiling", "*"): (_ceiling, "ceiling"),
    ("gemm", "*"): (_gemm, "gemm"),
    ("attn", "*"): (_attention, "attention"),
    ("elem", "argmax_sample"): (_argmax, "memory-bound"),
    ("elem", "*"): (_elementwise, "memory-bound"),
}
L2_BAND_LOW = 4 * 2**20  # below this a memory-bound kernel is latency-bound: L2 residency hardly matters
L2_SUFFIX = " (fits in L2)"


def build_cases(rows: Sequence[Row], l2_bytes: float = 0) -> tuple[list[Case], list[Row]]:
    """(cases, rows without a mapping: whole-step `hf` rows, device info, unknown names).

    Memory-bound rows re-run on the same buffers, so a working set between 4 MiB and twice the L2
    (`l2_bytes`) is served from L2 faster than HBM allows. tensor_cast charges HBM bandwidth (the
    conservative reading for activations in a real forward pass), so those rows are reported as
    their own class and not fitted.
    """
    cases, skipped = [], []
    for row in dedupe(rows):
        entry = BUILDERS.get((row.section, row.name)) or BUILDERS.get((row.section, "*"))
        if entry is None:
            skipped.append(row)
            continue
        builder, stage = entry
        try:
            cls, group, ops = builder(row)
        except KeyError:
            skipped.append(row)
            continue
        if stage == "memory-bound" and l2_bytes:
            working_set = max(float(o.counts.bytes) for o in ops)
            if L2_BAND_LOW < working_set < 2 * l2_bytes:
                cls, stage = cls + L2_SUFFIX, ""
        cases.append(Case(row=row, cls=cls, group=group, stage=stage, ops=tuple(ops)))
    return cases, skipped
