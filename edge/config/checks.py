"""The checks every config value goes through, and the one error they raise.

Kept apart from the dataclasses so that each section's ``_validate`` and the loader share
one set of rules: finite numbers, bounded integers and strings, short error lines.
"""

from __future__ import annotations

import dataclasses
import reprlib
from dataclasses import dataclass
from typing import Any


class ConfigError(ValueError):
    """A configuration value that cannot be used; the message names the key and the fix."""


#: Bounds every value of its type must keep, whatever its key: beyond them a value is a
#: typo or an attack, and would fail later in a thread (overflow, a cv2 error, a stall).
MAX_INT = 10**9
MAX_STRING = 1024  # characters: a path or a host name, never more


def show(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, so an error line stays one short line.

    A YAML anchor can expand into a huge value; formatting all of it would take minutes
    and gigabytes before the message is printed.
    """
    if isinstance(value, (dict, list, tuple, set)) and len(value) > 8:
        return f"a {type(value).__name__} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # its digits would not print
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def checked_string(value: str, at: str) -> str:
    if len(value) > MAX_STRING:
        raise ConfigError(f"{at}: must be at most {MAX_STRING} characters, got {len(value)}")
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ConfigError(f"{at}: must not contain control characters (found {bad!r})")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ConfigError(f"{at}: must be UTF-8 text (character {exc.start + 1} is a lone "
                          "surrogate)") from None
    return value


@dataclass(frozen=True)
class Range:
    """The values a number may take, declared next to its field (see :func:`ranged`).

    Two phrasings, one per kind of bound, so every message reads the same way:

    * an **amount** (``lo`` is 0): ``must be > 0, got -3`` or ``must be >= 0``, and above
      its sanity cap ``must be at most 64, got 65``;
    * an **interval**: ``must be in 1..16, got 0`` for integers, ``must be in (0, 1],
      got 0`` for real numbers (brackets say whether an end is included).
    """

    lo: float
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    amount: bool = False
    unit: str = ""
    note: str = ""

    def check(self, value: float, at: str) -> None:
        """Raise :class:`ConfigError` naming ``at`` when ``value`` is outside the range."""
        low_ok = value > self.lo if self.lo_open else value >= self.lo
        high_ok = (self.hi is None
                   or (value < self.hi if self.hi_open else value <= self.hi))
        if low_ok and high_ok:
            return
        if self.amount:
            if not low_ok:
                raise ConfigError(f"{at}: must be {'>' if self.lo_open else '>='} "
                                  f"{self.lo:g}, got {value}")
            raise ConfigError(f"{at}: must be at most {self.hi:g}, got {value:g}")
        raise ConfigError(f"{at}: must be in {self.describe()}, got {value}")

    def describe(self) -> str:
        """The range as the messages write it: ``1..16 pixels`` or ``(0, 1]``."""
        unit = f" {self.unit}" if self.unit else ""
        note = f" ({self.note})" if self.note else ""
        integral = (float(self.lo).is_integer() and self.hi is not None
                    and float(self.hi).is_integer() and not (self.lo_open or self.hi_open))
        if integral and isinstance(self.lo, int) and isinstance(self.hi, int):
            return f"{self.lo}..{self.hi}{unit}{note}"
        left, right = "(" if self.lo_open else "[", ")" if self.hi_open else "]"
        return f"{left}{self.lo:g}, {self.hi:g}{right}{unit}{note}"


def ranged(default: Any, lo: float, hi: float, *, lo_open: bool = False,
           hi_open: bool = False, unit: str = "", note: str = "") -> Any:
    """A dataclass field whose value must lie in the interval from ``lo`` to ``hi``."""
    return dataclasses.field(default=default, metadata={
        "range": Range(lo, hi, lo_open, hi_open, unit=unit, note=note)})


def positive(default: Any, most: float | None = None) -> Any:
    """A dataclass field holding an amount above 0, at most ``most`` when given."""
    return dataclasses.field(default=default, metadata={
        "range": Range(0, most, lo_open=True, amount=True)})


def non_negative(default: Any, most: float | None = None) -> Any:
    """A dataclass field holding an amount of 0 or more, at most ``most`` when given."""
    return dataclasses.field(default=default, metadata={
        "range": Range(0, most, amount=True)})


def check_ranges(obj: Any, at: str) -> None:
    """Check every field of dataclass ``obj`` that declares a :class:`Range`.

    ``None`` (an optional value left out) passes; ``at`` is the section's key path.
    """
    for f in dataclasses.fields(obj):
        bound = f.metadata.get("range")
        value = getattr(obj, f.name)
        if bound is not None and value is not None:
            bound.check(value, f"{at}.{f.name}" if at else f.name)




#: Upper bounds of durations (seconds) and counts that have no natural limit of their own.
DAY_S = 86_400.0
HOUR_S = 3_600.0
