"""Choosing between an op's decode kernel and its prefill kernel, symbolically.

Serving engines run some ops with one algorithm for decode-sized steps and another for prefill:
MLA attention (absorbed FlashMLA vs expanded multi-head attention), gated DeltaNet (fused
recurrent vs chunked). A formula computes both `Counts` and `pick_form` returns the one the step
uses: directly when the step size is concrete, as a field-by-field `sympy.Piecewise` in the query
length when it is symbolic (so one trace still serves every shape).

The launch count must stay an integer: it is the decode form's. Prefill steps run eagerly with
enough work per kernel that a few more launch gaps do not change their time.
"""

from __future__ import annotations

from typing import Any

import sympy

from ..counts import Counts


def is_short_step(q_len: Any, decode_query_len: Any) -> Any:
    """True / False / a sympy condition: the step has at most `decode_query_len` tokens per sequence."""
    return q_len <= decode_query_len


def pick_form(short_step: Any, decode: Counts, prefill: Counts) -> Counts:
    """`decode` where `short_step` holds, else `prefill`."""
    if short_step in (True, sympy.true):
        return decode
    if short_step in (False, sympy.false):
        return prefill

    def either(a: Any, b: Any) -> Any:
        return a if a == b else sympy.Piecewise((a, short_step), (b, True))

    keys = set(decode.flops) | set(prefill.flops)
    return Counts(
        flops={k: either(decode.flops.get(k, 0), prefill.flops.get(k, 0)) for k in sorted(keys)},
        bytes_read=either(decode.bytes_read, prefill.bytes_read),
        bytes_written=either(decode.bytes_written, prefill.bytes_written),
        comm_bytes=either(decode.comm_bytes, prefill.comm_bytes),
        state_bytes=either(decode.state_bytes, prefill.state_bytes),
        launches=decode.launches,
    )
