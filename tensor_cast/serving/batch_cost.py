"""Step cost of a heterogeneous batch from ONE symbolic trace of a (model, deployment).

Owns `BatchCost`: given a batch as (new tokens, cached tokens) per sequence, the time of one
engine step on one GPU (one rank's graph). It is built once from `analyze(..., symbolic=True)`,
whose per-op times are sympy expressions in B (sequences), S (new tokens each) and C (cached
tokens each), by splitting the ops into two groups:

- token-linear ops (GEMMs, norms, activations, MoE, collectives, embedding, lm_head: every op
  whose time depends on B and S only through the token count B·S — checked numerically per op,
  not assumed from its kind). Their summed time is a function of the step's total token count
  T only, so it runs with the GEMM efficiency of M = T exactly as a serving engine's packed
  (varlen) batch does; it is tabulated once over T = 1..`table_tokens` (a numpy sweep), so a
  call is one array lookup.
- per-sequence ops (attention, MLA, DSA indexer, linear attention — everything else). A batch
  is split into groups of sequences with the same new-token count (all decodes; each prefill
  chunk length) and each group is costed as one kernel call with B = group size, S = its new
  tokens and C = the group's mean cached tokens (attention work is linear in C at fixed S, so
  the mean preserves the group's total work).

Attention DP (`shared_s`): the part of the token-linear ops whose work is the ranks' combined
tokens, not one rank's — the MoE ops (`tensor_cast.moe`: the experts see every rank's tokens) and
the all-gather / reduce-scatter of every rank's tokens (`SHARED_OPS`: MoE TP, or the engines'
all-gather exchange, deployment/moe_exchange.py) — is also
tabulated on its own. The trace costs it as if every rank had T tokens (dp x T in all); a step
whose ranks hold different token counts runs it at their combined count instead (simulator.py,
"Attention-DP steps"). An all_to_all dispatch / combine stays with the rank: the step waits for
the rank that sends the most, its own tokens. Empty (all zeros) for a model without MoE.

CUDA-graph choices inside the expressions (`kernel_overhead_s`: graph launch for steps of at
most `graph_max_tokens` tokens) are re-keyed on the whole step's T, not the group's, because
one step is one graph replay or none.

Invariant (tests/test_serving_batch_cost.py): on a uniform batch (n sequences, each s new and
c cached tokens) the cost equals `analyze(batch_size=n, query_len=s, context_len=c)`'s
`total_time_s` for dp = pp = 1; with pp > 1 the stages' costs (built from each stage's
multiplicities) add up to the whole model's.

It must not schedule, simulate time, or know about engines (those are `scheduler.py` and
`simulator.py`); the engine only passes the token count it pads to (CUDA-graph batch sizes).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import compress, repeat
from operator import eq, ne
from typing import Any

import numpy as np
import sympy

from ..report.overlap import MOE_OP
from ..sizes import B, C, S
from . import hoist
from .hoist import Hoisted

T = sympy.Symbol("T", positive=True, integer=True)  # the whole step's token count (one rank)
# ops (besides tensor_cast.moe) that move every attention-DP rank's tokens: see "Attention DP" above
SHARED_OPS = ("tensor_cast.ep_allgather", "tensor_cast.ep_reducescatter")
PER_SEQUENCE_PROBES = ((2, 3), (1, 6), (3, 5), (1, 15), (4, 64), (1, 256))
SHORT_RUN = 12  # steps of a fast-forwarded run costed one Python-float call each (`BatchCost.decode_many_s`)


def _rekey_graph_conditions(expr: Any) -> Any:
    """Piecewise conditions on B·S (CUDA graph or eager) -> conditions on the step's T."""
    if not isinstance(expr, sympy.Basic) or not expr.has(sympy.Piecewise):
        return expr

    def rebuild(p: sympy.Piecewise) -> sympy.Piecewise:
        return sympy.Piecewise(*[(v, c.subs(B * S, T) if isinstance(c, sympy.Basic) else c) for v, c in p.args])

    return expr.replace(lambda e: isinstance(e, sympy.Piecewise), rebuild)


def _is_token_linear(expr: Any) -> bool:
    """True when `expr` depends on (B, S, C) only through B·S (numeric check at several points)."""
    if not isinstance(expr, sympy.Basic):
        return True
    if C in expr.free_symbols:
        return False
    values = []
    for b, s in PER_SEQUENCE_PROBES:
        values.append(float(expr.xreplace({B: sympy.Integer(b), S: sympy.Integer(s)})))
    pairs = zip(values[0::2], values[1::2])
    return all(math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-15) for a, b in pairs)


def _in_tokens(expr: Any, table_tokens: int) -> tuple[Any, Callable[[Any], Any], np.ndarray]:
    """A token-linear sum (in B, S) as an expression in T, its numpy function and its table over
    T = 0..table_tokens (T = 0 costs 0)."""
    if isinstance(expr, sympy.Basic):
        with sympy.evaluate(False):  # a renaming: re-evaluating every Max / Min on the way costs seconds (MoE skew)
            expr_t = expr.xreplace({B: sympy.Integer(1), S: T})
    else:
        expr_t = expr
    fn = sympy.lambdify((T,), expr_t, modules="numpy")
    grid = np.arange(0, table_tokens + 1, dtype=float)
    grid[0] = 1.0
    table = np.broadcast_to(np.asarray(fn(grid), dtype=float), grid.shape).copy()
    table[0] = 0.0
    return expr_t, fn, table


def _at(tokens: int, table: np.ndarray, fn: Callable[[Any], Any]) -> float:
    """A table over T = 0..len - 1 read at `tokens` (0 at or below 0), its function beyond it."""
    if tokens <= 0:
        return 0.0
    if tokens < len(table):
        return float(table[tokens])
    return float(fn(float(tokens)))


@dataclass
class BatchCost:
    """Step time (s) of a batch of (new, cached) token pairs on one rank; see the module docstring."""

    linear_table: np.ndarray  # [T] -> seconds of the token-linear ops (index 0 unused)
    linear_fn: Callable[[Any], Any]  # numpy function of T beyond the table
    group_fn: Callable[..., float]  # python-math function (B, S, C, T) of the per-sequence ops
    group_np: Callable[..., Any]  # numpy version (arrays of C for fast-forwarded decode steps)
    linear_expr: Any
    group_expr: Any
    launches: int = 0  # kernels one step launches (every op's launches x its layer count)
    shared_table: np.ndarray | None = None  # [T] -> seconds of the MoE share of linear_table (see "Attention DP")
    shared_fn: Callable[[Any], Any] | None = None  # numpy function of T beyond the table
    shared_expr: Any = 0

    @classmethod
    def from_report(cls, sym: Any, table_tokens: int = 16384,
                    multiplicities: Sequence[int] | None = None) -> BatchCost:
        """Build from a symbolic `Report` (dp replicas: B is the per-replica batch).

        `multiplicities`: how many times each costed node runs (default the report's own: the
        whole model); one pipeline stage's (`deployment/pipeline.py::stage_multiplicities`)
        gives that stage's step cost."""
        if not sym.symbolic:
            raise ValueError("BatchCost needs a symbolic report (analyze(..., symbolic=True))")
        mults = sym._mult if multiplicities is None else multiplicities
        linear: Any = sympy.Integer(0)
        group: Any = sympy.Integer(0)
        shared: Any = sympy.Integer(0)
        for node, mult in zip(sym._costed.nodes, mults, strict=True):
            if not mult:
                continue
            expr = mult * node.time.time_s
            if _is_token_linear(expr):  # its conditions on B·S become conditions on T in _in_tokens (B = 1, S = T)
                linear = linear + expr
                if node.op in SHARED_OPS or node.op.startswith(MOE_OP):
                    shared = shared + expr
            else:
                group = group + _rekey_graph_conditions(expr)
        linear_t, linear_fn, table = _in_tokens(linear, table_tokens)
        launches = sum(int(node.counts.launches) * int(mult) for node, mult in zip(sym._costed.nodes, sym._mult,
                                                                                     strict=True))
        shared_t, shared_fn, shared_table = _in_tokens(shared, table_tokens)
        return cls.from_parts(linear_t, group, table, launches, linear_fn=linear_fn,
                              shared=(shared_t, shared_table, shared_fn))

    @classmethod
    def from_parts(cls, linear_expr: Any, group_expr: Any, table: np.ndarray, launches: int,
                   linear_fn: Callable[[Any], Any] | None = None,
                   shared: tuple[Any, np.ndarray, Callable[[Any], Any] | None] | None = None) -> BatchCost:
        """From what `from_report` computes (the token-linear expression in T and its table, the
        per-sequence expression, the MoE share's expression in T and its table): how a build
        stored on disk comes back (`cost_cache.py`)."""
        shared_expr, shared_table, shared_fn = shared if shared is not None else (0, None, None)
        if shared_table is not None and shared_fn is None:
            shared_fn = sympy.lambdify((T,), shared_expr, modules="numpy")
        return cls(linear_table=table, launches=launches, shared_table=shared_table, shared_fn=shared_fn,
                   shared_expr=shared_expr,
                   linear_fn=linear_fn or sympy.lambdify((T,), linear_expr, modules="numpy"),
                   group_fn=sympy.lambdify((B, S, C, T), group_expr, modules="math"),
                   group_np=sympy.lambdify((B, S, C, T), group_expr, modules="numpy"),
                   linear_expr=linear_expr, group_expr=group_expr)

    def linear_s(self, tokens: int) -> float:
        return _at(tokens, self.linear_table, self.linear_fn)

    def shared_s(self, tokens: int) -> float:
        """Seconds of the MoE share of `linear_s(tokens)` (module docstring, "Attention DP"; 0 without MoE)."""
        if self.shared_table is None:
            return 0.0
        assert self.shared_fn is not None
        return _at(tokens, self.shared_table, self.shared_fn)

    def step_s(self, batch: Sequence[tuple[int, int]], padded_tokens: int | None = None) -> float:
        """Seconds of one step over `batch` = [(new tokens, cached tokens), ...] on one rank.

        `padded_tokens`: the token count the token-linear ops run at (an engine pads a decode
        batch to its next CUDA-graph size); default the batch's own total.
        """
        if not batch:
            return 0.0
        return self.grouped_s(*self.groups(batch), padded_tokens)

    @staticmethod
    def groups(batch: Sequence[tuple[int, int]]) -> tuple[int, dict[int, list[Any]]]:
        """(total new tokens, {new tokens: [sequences, summed cached tokens]}) of a non-empty batch,
        in first-appearance order: what `grouped_s` costs (pipeline stages share one grouping)."""
        # C-level passes (zip, count, sum) instead of a Python loop per sequence: a step is
        # mostly one group (the decodes), so only the other sequences are grouped in Python.
        # Groups keep their first-appearance order, so the sum is the same as a plain loop's.
        news, cached = zip(*batch)
        first = news[0]
        count = news.count(first)
        total = sum(news)
        groups: dict[int, list[Any]] = {first: [count, 0]}
        rest: Any = 0
        if count != len(news):
            for new, c in compress(batch, map(ne, news, repeat(first))):
                rest += c
                entry = groups.get(new)
                if entry is None:
                    groups[new] = [1, c]
                else:
                    entry[0] += 1
                    entry[1] += c
        if first <= 0 or min(news) <= 0 or min(cached) < 0:
            bad = next((n, c) for n, c in batch if n <= 0 or c < 0)
            raise ValueError(f"a sequence needs new tokens >= 1 and cached >= 0, got {bad}")
        whole = sum(cached)
        # integer token counts: the first group's sum is exact by subtraction; otherwise summed
        groups[first][1] = whole - rest if type(whole) is int else \
            sum(compress(cached, map(eq, news, repeat(first))))
        return total, groups

    def grouped_s(self, total: int, groups: dict[int, list[Any]], padded_tokens: int | None = None) -> float:
        """Seconds of one step over a batch grouped by `groups` (see `step_s`)."""
        tokens = total if padded_tokens is None else max(total, padded_tokens)
        time = self.linear_s(tokens)
        group_fn = self._group_fn_hoisted or self.group_fn
        for new, (n, c) in groups.items():
            time += group_fn(n, new, c / n, tokens)
        return time

    def decode_steps_s(self, count: int, new: int, mean_cached: np.ndarray, padded_tokens: int) -> np.ndarray:
        """Seconds of successive pure-decode steps: `count` sequences of `new` tokens each, whose
        mean cached length is each entry of `mean_cached` (vectorized fast-forward)."""
        tokens = max(count * new, padded_tokens)
        group = np.asarray(self.group_np(float(count), float(new), np.asarray(mean_cached, dtype=float),
                                         float(tokens)), dtype=float)
        return np.broadcast_to(group, np.shape(mean_cached)) + self.linear_s(tokens)

    def decode_many_s(self, count: Any, new: Any, mean_cached: np.ndarray, tokens: Any) -> np.ndarray:
        """Seconds of many pure-decode steps at once, each given as arrays of one length: its
        sequences, new tokens each, mean cached tokens and the token count the token-linear ops
        run at (>= 1; the padded size). The same sum as `grouped_s` of a one-group batch.

        `count`, `new` and `tokens` may be plain integers shared by every step (one rank's
        fast-forwarded run): then, bit for bit the same numbers, the per-sequence expression gets
        them as numpy scalars, so its terms without C are evaluated once per call instead of per
        step, and once per (count, new, tokens) across calls where hoist.py can split them out.
        Every operation is the same IEEE one on the same values; where the expression holds one
        whose scalar and array forms might round differently (`_scalar_exact`), they are spread
        into arrays instead. A short run (at most `SHORT_RUN` steps) of a scalar-exact expression is costed
        step by step with the math-module function on Python floats instead (hoisted the same way):
        the same IEEE operations again (a ceiling or floor gives an int there, exact at these sizes),
        at a few microseconds a step against a numpy call's overhead per operation."""
        mean_cached = np.asarray(mean_cached, dtype=float)
        if np.ndim(count) == np.ndim(new) == np.ndim(tokens) == 0:
            if self._scalar_exact:
                # a short run: one Python-float call per step beats ~150 numpy calls
                floats = self.decode_short_s(count, new, mean_cached.tolist(), tokens)
                if floats is not None:
                    return np.array(floats)
                fn = self._group_hoisted or self.group_np
                group = np.asarray(fn(np.float64(count), np.float64(new), mean_cached, np.float64(tokens)),
                                   dtype=float)
                if group.shape != mean_cached.shape:
                    group = np.broadcast_to(group, mean_cached.shape)
                return group + self._linear_many(np.array([tokens], dtype=np.int64))[0]
            count, new, tokens = (np.full(mean_cached.shape, v) for v in (count, new, tokens))
        tokens = np.asarray(tokens, dtype=np.int64)
        group = np.asarray(self.group_np(np.asarray(count, dtype=float), np.asarray(new, dtype=float),
                                         mean_cached, tokens.astype(float)), dtype=float)
        return np.broadcast_to(group, tokens.shape) + self._linear_many(tokens)

    def decode_short_s(self, count: int, new: int, mean_cached: Sequence[float], tokens: int) -> list[float] | None:
        """The short route of `decode_many_s` (a run of at most `SHORT_RUN` steps, integer sizes, a
        scalar-exact expression), as a list of Python floats: the hoisted math-module function once
        per step, plus the token-linear time; None where the route does not apply. One rank's short
        runs (fast_forward.decode_durations) take it without the numpy calls around it."""
        one = self._group_fn_hoisted if self._scalar_exact and len(mean_cached) <= SHORT_RUN else None
        if one is None:
            return None
        b, s, t = float(count), float(new), float(tokens)
        linear = float(self.linear_table[tokens]) if 0 < tokens < len(self.linear_table) else \
            float(self._linear_many(np.array([tokens], dtype=np.int64))[0])
        return [float(one(b, s, c, t)) + linear for c in mean_cached]

    def _linear_many(self, tokens: np.ndarray) -> np.ndarray:
        """`linear_s` of each entry of an int64 array of token counts (>= 1)."""
        size = len(self.linear_table)
        if len(tokens) == 1 and tokens[0] < size:  # (one count inside the table: a plain lookup)
            return self.linear_table[tokens]
        linear = self.linear_table[np.minimum(tokens, size - 1)]
        beyond = tokens >= size
        if beyond.any():
            linear = np.where(beyond, np.asarray(self.linear_fn(tokens.astype(float)), dtype=float), linear)
        return linear

    @cached_property
    def _group_fn_hoisted(self) -> Hoisted | None:
        """`group_fn` with its terms free of C evaluated once per (B, S, T) (hoist.py; None: not
        hoistable): one step's per-sequence cost, the same bits."""
        return hoist.build(self.group_fn)

    @cached_property
    def _group_hoisted(self) -> Hoisted | None:
        """`group_np` with its terms free of C evaluated once per (B, S, T) (hoist.py; None: not
        hoistable), for the scalar route of `decode_many_s` only."""
        return hoist.build(self.group_np) if self._scalar_exact else None

    @cached_property
    def _scalar_exact(self) -> bool:
        """True when `group_expr` is built only from + - * /, ceiling, floor, Min, Max and Piecewise:
        numpy evaluates each of those element by element with one IEEE rounding (or none), so a
        numpy scalar gives the same bits as that element of an array. Powers other than x**-1 (numpy
        special-cases x**2, x**0.5 on arrays) and transcendental functions are left to the arrays."""
        expr = self.group_expr
        if not isinstance(expr, sympy.Basic):
            return True
        allowed = (sympy.ceiling, sympy.floor, sympy.Piecewise, sympy.Min, sympy.Max)
        functions = expr.atoms(sympy.Function) | expr.atoms(sympy.Min, sympy.Max)
        return all(isinstance(f, allowed) for f in functions) and all(p.exp == -1 for p in expr.atoms(sympy.Pow))

