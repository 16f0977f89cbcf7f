"""Facial-emotion recognition on the device: capture, detect, classify, track, report.

This package must never import TensorFlow or Keras: the device install has neither.
"""

__version__ = "0.1.0"
