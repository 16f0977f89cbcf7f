"""What machine this is, for benchmark reports, model cards and training records."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

#: CPU flags (as /proc/cpuinfo spells them) that change int8 and bfloat16 speed several-fold:
#: x86 vector widths and integer dot products, Arm's dot-product and int8 matrix extensions.
SPEED_FLAGS: tuple[str, ...] = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16",
                                "amx_tile", "amx_int8", "asimddp", "i8mm")

#: Libraries whose versions a report names.
_LIBRARIES = ("ai-edge-litert", "opencv-python-headless", "numpy")


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` fields (empty off Linux)."""
    fields: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else the architecture."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine()


def cpu_flags() -> list[str]:
    """Which of :data:`SPEED_FLAGS` this CPU has (x86 ``flags``, Arm ``Features``)."""
    info = _cpuinfo()
    have = set((info.get("flags") or info.get("Features") or "").split())
    return [f for f in SPEED_FLAGS if f in have]


def describe() -> str:
    """``<cpu model>, <n> cores (<speed flags>)``."""
    flags = cpu_flags()
    return f"{cpu_model()}, {os.cpu_count()} cores" + (f" ({', '.join(flags)})" if flags else "")


def machine(libraries: tuple[str, ...] = _LIBRARIES) -> dict:
    """CPU model and speed flags, cores, OS, Python and library versions of this machine."""
    versions = {}
    for dist in libraries:
        try:
            versions[dist] = version(dist)
        except PackageNotFoundError:
            continue
    return {"cpu": cpu_model(), "cpu_flags": cpu_flags(), "cores": os.cpu_count(),
            "cores_used": len(os.sched_getaffinity(0)), "python": platform.python_version(),
            "system": platform.platform(), "versions": versions}
