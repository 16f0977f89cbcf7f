"""Measuring the device, for ``python -m edge.bench`` and ``convert.quantize``.

- :mod:`edge.measure.runs`: one run of the real pipeline over a clip and its figures
  (speed, detections, events, crowd counts);
- :mod:`edge.measure.latency`: the classifier's own ms per face.
"""
