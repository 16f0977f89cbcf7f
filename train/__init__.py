"""Workstation side: load FER-2013, train the Keras model, evaluate it (TensorFlow/Keras)."""
