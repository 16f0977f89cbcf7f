"""Facial-emotion recognition on the device: capture, detect, classify, track, report.

This package must never import TensorFlow or Keras: the device install has neither.

Modules are grouped by job (``capture``, ``vision``, ``runtime``, ``config``, ``sinks``,
``web``); the module paths of the flat layout they replace still import for one release,
with a ``DeprecationWarning`` that names the new path (:data:`MOVED`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__version__ = "0.1.0"

#: Old module path -> where it lives now (moved in 0.1.0; the old paths go in 0.2.0).
MOVED: dict[str, str] = {
    "edge.checks": "edge.config.checks",
    "edge.config_outputs": "edge.config.outputs",
    "edge.sources": "edge.capture.sources",
    "edge.reconnect": "edge.capture.reconnect",
    "edge.queues": "edge.capture.queues",
    "edge.images": "edge.capture.image_files",
    "edge.motion": "edge.vision.motion",
    "edge.schedule": "edge.vision.schedule",
    "edge.faces": "edge.vision.faces",
    "edge.follow": "edge.vision.follow",
    "edge.tracking": "edge.vision.tracking",
    "edge.photos": "edge.vision.photo_labels",
    "edge.pipeline": "edge.runtime.pipeline",
    "edge.service": "edge.runtime.service",
    "edge.notify": "edge.runtime.notify",
    "edge.sysinfo": "edge.runtime.sysinfo",
}


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Answers an import of an old path with the module at its new one, and warns."""

    def find_spec(self, name: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        if name not in MOVED:
            return None
        return importlib.machinery.ModuleSpec(name, self)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {MOVED[spec.name]}; import it from there "
                      "(the old path goes in the next release)", DeprecationWarning,
                      stacklevel=2)
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """The module was executed under its new name; nothing more to run."""


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
