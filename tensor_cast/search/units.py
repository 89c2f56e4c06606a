"""Parsing the quantities a search is asked in: latency targets, request rates, GPU prices.

`duration("300ms") -> 0.3`, `rate("20/s") -> 20.0`, `prices(["h100-sxm=2.5/h"]) -> {"h100-sxm":
2.5}` (dollars per GPU-hour). Every unparsable value is an `InvalidArgumentError` naming it and
the accepted forms.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..errors import InvalidArgumentError

DURATION_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "min": 60.0}
RATE_UNITS = {"s": 1.0, "sec": 1.0, "min": 1 / 60, "h": 1 / 3600, "hr": 1 / 3600}
PRICE_UNITS = {"h": 1.0, "hr": 1.0, "hour": 1.0, "min": 60.0, "s": 3600.0}
_NUMBER = r"(\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"


def _number(text: str) -> float | None:
    match = re.fullmatch(_NUMBER, text)
    return float(text) if match else None


def duration(text: str, *, name: str = "duration") -> float:
    """Seconds from '300ms', '0.3s', '250us', '1min' (a bare number is seconds)."""
    value = str(text).strip().lower()
    match = re.fullmatch(rf"({_NUMBER})\s*([a-zµ]*)", value)
    unit = match.group(3) if match else None
    if match is None or (unit and unit not in DURATION_UNITS):
        raise InvalidArgumentError(f"{name} {text!r} is not a duration; accepted: a number with a unit "
                                   f"({', '.join(DURATION_UNITS)}), e.g. 300ms or 0.01s")
    seconds = float(match.group(1)) * DURATION_UNITS[unit or "s"]
    if seconds <= 0:
        raise InvalidArgumentError(f"{name} {text!r} must be > 0")
    return seconds


def rate(text: str, *, name: str = "rate") -> float:
    """Requests per second from '20/s', '1200/min', '20' (per second)."""
    value = str(text).strip().lower().replace(" ", "")
    number, _, unit = value.partition("/")
    parsed = _number(number)
    if parsed is None or (unit and unit not in RATE_UNITS):
        raise InvalidArgumentError(f"{name} {text!r} is not a request rate; accepted: N/s, N/min, N/h "
                                   f"or a bare number of requests per second, e.g. 20/s")
    per_s = parsed * RATE_UNITS[unit or "s"]
    if per_s <= 0:
        raise InvalidArgumentError(f"{name} {text!r} must be > 0")
    return per_s


def price(text: str) -> tuple[str, float]:
    """('h100-sxm', 2.5) from 'h100-sxm=2.5/h' (dollars per GPU-hour; '/h' may be omitted)."""
    device, sep, amount = str(text).partition("=")
    amount = amount.strip().lower().lstrip("$")
    number, _, unit = amount.partition("/")
    parsed = _number(number.strip())
    if not sep or not device.strip() or parsed is None or (unit and unit not in PRICE_UNITS) or parsed <= 0:
        raise InvalidArgumentError(f"price {text!r} is not DEVICE=DOLLARS/h; accepted: e.g. h100-sxm=2.5/h "
                                   f"(units per GPU: {', '.join(PRICE_UNITS)})")
    return device.strip(), parsed * PRICE_UNITS[unit or "h"]


def prices(items: Iterable[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        for part in str(item).split(","):
            if part.strip():
                device, per_hour = price(part)
                out[device] = per_hour
    return out


def int_list(text: str | Iterable[int], *, name: str) -> tuple[int, ...]:
    """(8, 16, 32) from '8,16,32' or an iterable of ints; every value must be a positive integer."""
    parts = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for part in parts:
        try:
            value = int(str(part).strip())
        except ValueError:
            raise InvalidArgumentError(f"{name} value {part!r} is not an integer; accepted: positive integers, "
                                       f"comma-separated (e.g. 8,16,32)") from None
        if value <= 0:
            raise InvalidArgumentError(f"{name} value {value} must be a positive integer")
        out.append(value)
    if not out:
        raise InvalidArgumentError(f"{name} is empty; give at least one positive integer")
    return tuple(sorted(set(out)))
