"""The checks every config value goes through, and the one error they raise.

Kept apart from the dataclasses so that each section's ``_validate`` and the loader share
one set of rules: finite numbers, bounded integers and strings, short error lines.
"""

from __future__ import annotations

import reprlib
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
    text = reprlib.repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def checked_string(value: str, at: str) -> str:
    if len(value) > MAX_STRING:
        raise ConfigError(f"{at}: must be at most {MAX_STRING} characters, got {len(value)}")
    bad = next((c for c in value if ord(c) < 32 or ord(c) == 127), None)
    if bad is not None:
        raise ConfigError(f"{at}: must not contain control characters (found {bad!r})")
    return value


def positive(value: float, at: str, most: float | None = None) -> None:
    if value <= 0:
        raise ConfigError(f"{at}: must be > 0, got {value}")
    at_most(value, at, most)


def non_negative(value: float, at: str, most: float | None = None) -> None:
    if value < 0:
        raise ConfigError(f"{at}: must be >= 0, got {value}")
    at_most(value, at, most)


def at_most(value: float, at: str, most: float | None) -> None:
    if most is not None and value > most:
        raise ConfigError(f"{at}: must be at most {most:g}, got {value:g}")


#: Upper bounds of durations (seconds) and counts that have no natural limit of their own.
DAY_S = 86_400.0
HOUR_S = 3_600.0
