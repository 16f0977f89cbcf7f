"""Measuring the device: ``python -m edge.bench``.

- :mod:`edge.bench.cli`: the command line, the classifier's timing and the report;
- :mod:`edge.bench.runs`: one run of the real pipeline over a clip and its figures
  (speed, detections, events, crowd counts).
"""
