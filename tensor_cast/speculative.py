"""Speculative decoding with MTP draft tokens: how many tokens one decode step yields.

With N draft tokens per step and a per-draft acceptance rate a (the probability that a draft is
accepted given that every draft before it was), a step emits the verified token plus the accepted
prefix of the drafts: E = 1 + a + a² + ... + a^N = (1 − a^(N+1)) / (1 − a) tokens per sequence
(Leviathan et al. 2023, eq. 1). The effective time per output token is the step time divided by
E. DeepSeek-V3 reports 85–90 % acceptance for its one MTP draft (technical report §5.4.3), the
default here.

Owns `SpeculativeDecoding` (validated) and nothing else; the model side of MTP is
`models/mtp.py`, the reporting is in `report/report.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidArgumentError

DEFAULT_ACCEPTANCE = 0.85  # DeepSeek-V3 technical report §5.4.3: 85-90 % for the second token


@dataclass(frozen=True)
class SpeculativeDecoding:
    draft_tokens: int  # N: MTP draft passes per step
    acceptance: float = DEFAULT_ACCEPTANCE  # a, per draft, in (0, 1]

    def __post_init__(self) -> None:
        validate_mtp(self.draft_tokens, self.acceptance)

    @property
    def tokens_per_step(self) -> float:
        """Expected tokens emitted per sequence per decode step."""
        a, n = self.acceptance, self.draft_tokens
        return float(n + 1) if a == 1 else (1 - a ** (n + 1)) / (1 - a)


def validate_mtp(mtp: object, acceptance: object) -> None:
    """Clear errors for a bad draft count or acceptance rate."""
    if isinstance(mtp, bool) or not isinstance(mtp, int) or mtp < 0:
        raise InvalidArgumentError(f"mtp must be an integer >= 0 (MTP draft tokens per step), got {mtp!r}")
    if isinstance(acceptance, bool) or not isinstance(acceptance, (int, float)) or not 0 < acceptance <= 1:
        raise InvalidArgumentError(f"mtp_acceptance must be a number in (0, 1], got {acceptance!r}")
