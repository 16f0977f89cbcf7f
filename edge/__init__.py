"""Facial-emotion recognition on the device: capture, detect, classify, track, report.

This package must never import TensorFlow or Keras: the device install has neither.

Modules are grouped by job: ``config`` (typed settings), ``capture`` (frame sources),
``vision`` (where to look, the detectors, tracking), ``runtime`` (threads and the
service), ``sinks`` (where events go) and ``web`` (the device's page and API);
:mod:`edge.assemble` builds a device from a config.
"""

from __future__ import annotations

__version__ = "0.1.0"
