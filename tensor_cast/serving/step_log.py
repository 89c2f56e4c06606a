"""What the event loop records of the steps it ran: counts, per-phase totals, ITL samples, KV use.

Owns `StepLog`: as each step, fast-forwarded run of k decode steps or pipelined batch ends, the
loop (simulator.py) hands it the step's time(s), composition and KV use, and it keeps
- the number of engine steps and, per pool, the `PhaseTotals` (time_split.py);
- the inter-token-latency samples: each decode step's duration weighted by the sequences it
  decoded (single steps gathered in a list, a run's kept as its numpy array, in the order they ran);
- the KV cache's use: its peak and its time-weighted mean (each step's use x its duration);
- with `record_steps`, one `StepRecord` per step, run or pipeline stage (the Chrome trace).

The sums are taken in the order the steps end, one addition per step or run, so a run gives the
same numbers however the loop reached it. It must not schedule, cost or time anything itself.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .sim_result import StepRecord
from .time_split import PhaseTotals


class StepLog:
    def __init__(self, ranks: Mapping[str, int], record_steps: bool) -> None:
        self.phases = {role: PhaseTotals(ranks=count) for role, count in ranks.items()}
        self.record_steps = record_steps
        self.steps: list[StepRecord] = []
        self.num_steps = 0
        self.kv_time = 0.0
        self.kv_weighted = 0.0
        self.kv_peak = 0.0
        self._itl_d: list[np.ndarray] = []
        self._itl_w: list[np.ndarray] = []
        self._itl_one: list[tuple[float, float]] = []  # single steps' and batches' (ITL, sequences), not yet in _itl_d/w

    def step(self, role: str, record: tuple[str, float, float, int, int, int, int], used: float) -> None:
        """One step (or a run that kept one step) as the fields of its `StepRecord`: (worker, start,
        seconds, steps, prefill tokens, decode sequences, running), at KV use `used` (a fraction
        of the pool's blocks)."""
        total, k, prefill_tokens, decode_seqs = record[2], record[3], record[4], record[5]
        self.num_steps += k
        self.phases[role].add(total, k, prefill_tokens, decode_seqs)
        if decode_seqs:
            self._itl_one.append((total, float(decode_seqs)))
        self._kv(used, total, used * total)
        if self.record_steps:
            self.steps.append(StepRecord(*record))

    def run(self, role: str, record: tuple[str, float, float, int, int, int, int], durations: np.ndarray,
            used: np.ndarray) -> None:
        """A fast-forwarded run of k decode steps (`record` as in `step`): their `durations` and KV use."""
        total, k, prefill_tokens, decode_seqs = record[2], record[3], record[4], record[5]
        self.num_steps += k
        self.phases[role].add(total, k, prefill_tokens, decode_seqs)
        if decode_seqs:
            self._flush_itl()
            self._itl_d.append(durations)
            self._itl_w.append(np.full(k, decode_seqs, dtype=float))
        self._kv(float(np.max(used)), total, float(np.dot(used, durations)))
        if self.record_steps:
            self.steps.append(StepRecord(*record))

    def batch(self, role: str, itl_s: float, period: float, prefill_tokens: int, decode_seqs: int, used: float,
              stages: Sequence[StepRecord]) -> None:
        """A pipelined batch that ended: `itl_s` from its scheduling to its last stage's end, `period`
        its share of the pipeline's time (its slowest stage), one record per stage (given when
        `record_steps`: the trace shows the batches passing the stages)."""
        self.num_steps += 1
        if decode_seqs:
            self._itl_one.append((itl_s, float(decode_seqs)))
        self.phases[role].add(period, 1, prefill_tokens, decode_seqs)
        self._kv(used, period, used * period)
        self.steps.extend(stages)

    def _kv(self, peak: float, time: float, weighted: float) -> None:
        self.kv_peak = max(self.kv_peak, peak)
        self.kv_time += time
        self.kv_weighted += weighted

    def _flush_itl(self) -> None:
        """Move the single steps' and batches' ITL samples into _itl_d / _itl_w (keeping their order)."""
        if self._itl_one:
            durations, weights = zip(*self._itl_one)
            self._itl_d.append(np.array(durations))
            self._itl_w.append(np.array(weights))
            self._itl_one = []

    def itl(self) -> tuple[np.ndarray, np.ndarray]:
        """(durations, weights) of every ITL sample, in the order the steps ran."""
        self._flush_itl()
        if not self._itl_d:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(self._itl_d), np.concatenate(self._itl_w)

    @property
    def kv_mean_use(self) -> float:
        return self.kv_weighted / self.kv_time if self.kv_time else 0.0
