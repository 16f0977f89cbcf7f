"""A fuzz of what a user types: config values, TF_CONFIG and the fleet's flags, in the
spirit of the attack run. Each case may only be refused the documented way (ConfigError,
ValueError, exit 2): never a traceback of another kind. Seeded, so a failure repeats."""

from __future__ import annotations

import dataclasses
import json
import random

import pytest

from edge.config import Config, ConfigError, load, show

#: Values that broke parsers elsewhere: huge, negative, non-finite, wrong types, odd text.
NASTY: list[object] = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63), 10**4300, 0.0, -0.0, 1e-320,
    1e308, float("inf"), float("-inf"), float("nan"), "", " ", "0", "-1", "nan", "inf",
    "1e999", "\x00", "\udc80", "é", "a/b", "a+b", "#", "$SYS/x", "../../etc/passwd",
    "/dev/zero", "/dev/full", "x" * 70_000, "\n" * 10, [], [1, 2], {}, {"a": 1}, [[[]]],
    "rtsp://", "http://[::1", "0x10", "1_000", "٣", "🙂",
]


def _keys(cls: type, prefix: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(cls):
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else f.default)
        if dataclasses.is_dataclass(default):
            out += _keys(type(default), f"{prefix}{f.name}.")
        else:
            out.append(prefix + f.name)
    return out


KEYS = _keys(Config)


def test_config_values() -> None:
    rng = random.Random(1337)
    cases = [(key, value) for key in KEYS for value in NASTY]
    cases += [(rng.choice(KEYS), rng.choice(NASTY)) for _ in range(2000)]
    assert len(cases) >= 5000
    for key, value in cases:
        try:
            load(None, {key: value})
        except ConfigError as exc:
            assert "\n" not in str(exc), (key, value)
        except Exception as exc:
            pytest.fail(f"{key}={show(value)}: {type(exc).__name__}: {exc}")


def test_tf_config() -> None:
    from train.strategy import task_from_env

    rng = random.Random(7)
    parts = ['{"cluster":', '{"worker":', '["a:1"', ',"b:2"]', '}', ',"task":',
             '{"type":"worker"', ',"index":0', ',"index":9', '}', '[', ']', '"', '\\u0000',
             ':', ',', 'null', '1e999', '-1', '"chief"', '{"chief":["c:1","d:1"]}']
    cases = [json.dumps(v) for v in NASTY if not isinstance(v, (int, float))
             or isinstance(v, bool) or abs(v) < 2**64]
    cases += ["".join(rng.choice(parts) for _ in range(rng.randint(1, 14)))
              for _ in range(1500)]
    for raw in cases:
        try:
            task_from_env({"TF_CONFIG": raw})
        except ValueError:
            pass
        except Exception as exc:
            pytest.fail(f"TF_CONFIG={show(raw)}: {type(exc).__name__}: {exc}")


def test_fleet_flags() -> None:
    from fleet.consume import parse_args

    rng = random.Random(3)
    flags = ["--host", "--port", "--prefix", "--client-id", "--max-seconds", "--username"]
    values = [v if isinstance(v, str) else repr(v) for v in NASTY
              if isinstance(v, (str, float)) or (isinstance(v, int) and abs(v) < 2**64)]
    values = [v for v in values if "\x00" not in v]
    for _ in range(800):
        argv = []
        for flag in rng.sample(flags, rng.randint(1, 3)):
            argv += [flag, rng.choice(values)]
        try:
            parse_args(argv)
        except SystemExit as exc:
            assert exc.code == 2, argv
        except Exception as exc:
            pytest.fail(f"{show(argv)}: {type(exc).__name__}: {exc}")
