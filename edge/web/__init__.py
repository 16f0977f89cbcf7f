"""The device's web page, REST API and Prometheus metrics (install the ``web`` extra).

- :mod:`edge.web.live`: what the page shows, fed by the pipeline (faces in view, events,
  timeline, the latest frame when ``web.preview`` is on);
- :mod:`edge.web.metrics`: ``/metrics`` in the Prometheus text format;
- :mod:`edge.web.app`: the Flask routes and their token check;
- :mod:`edge.web.server`: waitress in its own threads, started and stopped with the device.
"""
