"""Speculative decoding with MTP draft tokens: how many tokens one decode step yields.

With N draft tokens per step and conditional acceptance rates a_1 .. a_N (a_i: the probability
that draft i is accepted given that every draft before it was), a step emits the verified token
plus the accepted prefix of the drafts: E = 1 + a_1 + a_1 a_2 + ... + a_1 ... a_N tokens per
sequence (Leviathan et al. 2023, eq. 1, with a rate per position). The effective time per output
token is the step time divided by E.

The rates, by what is given (`mtp_acceptance`):
- a number a: every draft at a (E = (1 − a^(N+1)) / (1 − a));
- N numbers: a_1 .. a_N as given;
- nothing (the default): a_1 = 0.85 and each later draft's rate `DEFAULT_DECAY` times the one
  before (a_i = 0.85 x 0.856^(i−1): 0.85, 0.728, 0.623, ...). DeepSeek-V3 ships one MTP module,
  trained to predict the second token, and reports 85–90 % acceptance for that one draft
  (technical report §5.4.3); engines draw further drafts by running the same module again on its
  own output, and its acceptance falls at those later positions: Nebius measured the original
  DeepSeek-V3-0324 MTP module at K = 7 drafts to a mean acceptance length of 3.20 tokens at
  temperature 0 (MT-bench, HumanEval, GSM8K; huggingface.co/nebius/MTP-DeepSeek-V3-0324), where a
  constant 0.85 would give 4.85. 0.856 is the decay that puts a_1 = 0.85 through that 3.20 at
  K = 7; it gives E = 1.85, 2.47 and 2.85 for 1, 2 and 3 drafts (a constant 0.85: 1.85, 2.57, 3.19).
  Both numbers are public measurements of DeepSeek's module on real text, not fitted to any
  serving run here; other models' MTP modules may keep or lose more.

Owns `SpeculativeDecoding` (validated) and nothing else; the model side of MTP is
`models/mtp.py`, the reporting is in `report/report.py`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgumentError

DEFAULT_ACCEPTANCE = 0.85  # the first draft: DeepSeek-V3 technical report §5.4.3, 85-90 % for the second token
DEFAULT_DECAY = 0.856  # each later draft's rate over the one before (module docstring: Nebius' K = 7 length 3.20)


@dataclass(frozen=True)
class SpeculativeDecoding:
    draft_tokens: int  # N: MTP draft passes per step
    acceptance: float | Sequence[float] | None = None  # a per draft, a_1 .. a_N (kept as a tuple), or None: default

    def __post_init__(self) -> None:
        validate_mtp(self.draft_tokens, self.acceptance)
        if isinstance(self.acceptance, Sequence):
            object.__setattr__(self, "acceptance", tuple(float(a) for a in self.acceptance))

    @property
    def rates(self) -> tuple[float, ...]:
        """a_1 .. a_N: each draft's acceptance given that the drafts before it were accepted."""
        n, a = self.draft_tokens, self.acceptance
        if a is None:
            return tuple(DEFAULT_ACCEPTANCE * DEFAULT_DECAY ** i for i in range(n))
        if isinstance(a, Sequence):
            return tuple(a)
        return (float(a),) * n

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens emitted per sequence per decode step."""
        total, reach = 1.0, 1.0
        for rate in self.rates:
            reach *= rate
            total += reach
        return total

    def describe(self) -> str:
        """The acceptance as given, e.g. 'acceptance 0.9' or 'acceptance by draft 0.85, 0.728 (default)'."""
        if isinstance(self.acceptance, (int, float)):
            return f"acceptance {self.acceptance:g}"
        rates = ", ".join(f"{r:.3g}" for r in self.rates)
        return f"acceptance by draft {rates}" + (" (default)" if self.acceptance is None else "")


def validate_mtp(mtp: object, acceptance: Any) -> None:
    """Clear errors for a bad draft count or acceptance rate(s)."""
    if isinstance(mtp, bool) or not isinstance(mtp, int) or mtp < 0:
        raise InvalidArgumentError(f"mtp must be an integer >= 0 (MTP draft tokens per step), got {mtp!r}")
    if acceptance is None:
        return
    rates = list(acceptance) if isinstance(acceptance, Sequence) and not isinstance(acceptance, str) else [acceptance]
    if isinstance(acceptance, Sequence) and not isinstance(acceptance, str) and len(rates) != mtp:
        raise InvalidArgumentError(f"mtp_acceptance gives {len(rates)} rate(s) for {mtp} draft(s); accepted: one "
                                   f"rate for every draft, or {mtp} rate(s), one per draft position")
    for a in rates:
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not math.isfinite(a) or not 0 < a <= 1:
            raise InvalidArgumentError(f"mtp_acceptance must be a number in (0, 1], got {acceptance!r} (one rate for "
                                       "every draft, or one per draft)")
