"""Step-cost stubs for the serving simulator's tests: `ConstantCost` (every step lasts `d` seconds,
whatever its batch: a hand-solvable model) and `LinearCost` (a batch-dependent step, so that ranks
and runs differ: 1 ms + 1 us per new token + 10 ns per cached token). Neither launches kernels, so
no engine's host-launch floor (`eager_launch_host_s`) applies, and neither has a MoE share
(`shared_s`: what attention-DP ranks run at their combined tokens)."""

from __future__ import annotations

import numpy as np


class ConstantCost:
    launches = 0

    def __init__(self, d: float = 0.01) -> None:
        self.d = d

    def step_s(self, batch, padded_tokens=None):
        return self.d

    def shared_s(self, tokens):
        return 0.0

    def decode_many_s(self, count, new, means, tokens):
        return np.full(np.shape(means), self.d)

    def decode_short_s(self, count, new, means, tokens):
        return None  # no quick short-run route: decode_many_s costs every run (fast_forward.decode_durations)


class LinearCost(ConstantCost):
    def step_s(self, batch, padded_tokens=None):
        return 1e-3 + 1e-6 * sum(n for n, _ in batch) + 1e-8 * sum(c for _, c in batch)

    def decode_many_s(self, count, new, means, tokens):
        return 1e-3 + 1e-6 * count * new + 1e-8 * count * np.asarray(means)
