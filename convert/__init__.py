"""Keras -> TFLite conversion with a model card and a parity check (TensorFlow)."""
