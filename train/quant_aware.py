"""Quantization-aware fine-tuning: train a model through the rounding its int8 file will do.

Post-training int8 quantization rounds every weight and every activation of a model that
never saw rounding; a few faces that sat near a decision boundary cross it. Fine-tuning
through a simulation of that rounding moves the weights to where it costs nothing.

The simulation mirrors what ``convert.quantize`` (the TFLite converter) does to these
presets, so the simulated model and the int8 file agree:

* BatchNormalization is folded into the convolution or dense layer before it, as the
  converter does, so the weights being rounded are the ones the file will hold.
* Weights: symmetric int8 per output channel (scale ``max|w| / 127``).
* Activations: asymmetric int8 per tensor, over the range calibration observes on the
  float model (global min and max over the calibration faces) after every layer whose
  output the int8 model stores: each ReLU (fused into its convolution), each convolution
  or dense layer not followed by one, each LeakyReLU (an op of its own) and the logits.
  Pooling, flattening and dropout keep their input's scale, as in the int8 model.

Gradients pass the rounding straight through (zero outside the range). The fine-tuned
model is saved back as a plain float Keras model (folded, without BatchNormalization and
without the simulation): ``convert.quantize`` then calibrates it on the same faces and
gets the ranges it was trained under.
"""

from __future__ import annotations

import logging

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from train.data import calibration_inputs

log = logging.getLogger(__name__)

_PACKAGE = "emotion_qat"
# Layers the int8 model runs at their input's scale: nothing new to round.
_PASS_THROUGH = (layers.MaxPooling2D, layers.AveragePooling2D, layers.GlobalAveragePooling2D,
                 layers.Flatten, layers.Reshape, layers.Dropout, layers.Rescaling)
# Activations the converter fuses into the layer before, so only their output is stored.
_FUSED = ("relu", "relu6")


def _fake_quant_kernel(kernel: tf.Tensor) -> tf.Tensor:
    """Round a kernel to symmetric int8 per output channel (the last axis)."""
    bound = tf.stop_gradient(tf.reduce_max(tf.abs(kernel), axis=list(range(kernel.shape.rank - 1))))
    bound = tf.maximum(bound, 1e-8)  # an all-zero channel stays zero
    return tf.quantization.fake_quant_with_min_max_vars_per_channel(
        kernel, -bound, bound, num_bits=8, narrow_range=True)


class _SimulatedKernel:
    """Mix-in: the layer's kernel passes through int8 rounding while ``simulate`` is set."""

    simulate: bool = True

    def _kernel_for_call(self) -> tf.Tensor:
        return _fake_quant_kernel(self.kernel) if self.simulate else self.kernel


@keras.saving.register_keras_serializable(_PACKAGE)
class QuantConv2D(_SimulatedKernel, layers.Conv2D):
    """Conv2D whose kernel is rounded to int8 per output channel in the forward pass."""

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        out = self.convolution_op(inputs, self._kernel_for_call())
        if self.use_bias:
            out = ops.add(out, self.bias)
        return self.activation(out) if self.activation is not None else out


@keras.saving.register_keras_serializable(_PACKAGE)
class QuantDepthwiseConv2D(_SimulatedKernel, layers.DepthwiseConv2D):
    """DepthwiseConv2D rounded per output channel (input channel x multiplier), as TFLite."""

    def _kernel_for_call(self) -> tf.Tensor:
        if not self.simulate:
            return self.kernel
        kh, kw, c_in, mult = self.kernel.shape
        flat = ops.reshape(self.kernel, (kh, kw, 1, c_in * mult))
        return ops.reshape(_fake_quant_kernel(flat), (kh, kw, c_in, mult))

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        out = ops.depthwise_conv(inputs, self._kernel_for_call(), strides=self.strides,
                                 padding=self.padding, dilation_rate=self.dilation_rate,
                                 data_format=self.data_format)
        if self.use_bias:
            out = ops.add(out, self.bias)
        return self.activation(out) if self.activation is not None else out


@keras.saving.register_keras_serializable(_PACKAGE)
class QuantDense(_SimulatedKernel, layers.Dense):
    """Dense whose kernel is rounded to int8 per output unit in the forward pass."""

    def call(self, inputs: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        out = ops.matmul(inputs, self._kernel_for_call())
        if self.use_bias:
            out = ops.add(out, self.bias)
        return self.activation(out) if self.activation is not None else out


@keras.saving.register_keras_serializable(_PACKAGE)
class FakeQuant(layers.Layer):
    """Round a tensor to asymmetric int8 over ``[range_min, range_max]``.

    The range is set by :func:`calibrate`, not learnt. While ``observe`` is set (eager
    calls only) the layer passes its input through unchanged and widens the range to it.
    """

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)
        self.observe = False

    def build(self, input_shape: tuple) -> None:
        self.range_min = self.add_weight(shape=(), initializer="zeros", trainable=False,
                                         name="range_min")
        self.range_max = self.add_weight(shape=(), initializer="ones", trainable=False,
                                         name="range_max")

    def call(self, inputs: tf.Tensor) -> tf.Tensor:
        if self.observe:
            self.range_min.assign(ops.minimum(self.range_min, ops.min(inputs)))
            self.range_max.assign(ops.maximum(self.range_max, ops.max(inputs)))
            return inputs
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, ops.minimum(self.range_min, 0.0), ops.maximum(self.range_max, 0.0),
            num_bits=8, narrow_range=False)


def prepare(model: keras.Model) -> keras.Model:
    """The quantization-aware twin of a trained float model.

    BatchNormalization is folded into the layer before it, kernels and activations are
    rounded as the int8 model rounds them, and the function is otherwise unchanged: with
    the simulation off, the twin computes what ``model`` computes at inference. Call
    :func:`calibrate` before training it.

    Args:
        model: a chain of layers (every preset is one): convolutions (full, separable,
            depthwise), dense layers, BatchNormalization right after one of them,
            activations, pooling, flattening, dropout and rescaling.

    Raises:
        ValueError: the model is not a chain, or has a layer this cannot simulate.
    """
    chain = _chain(model)
    x = inputs = keras.Input(shape=model.inputs[0].shape[1:], name=model.inputs[0].name)
    i = 0
    while i < len(chain):
        layer = chain[i]
        bn = chain[i + 1] if i + 1 < len(chain) and isinstance(
            chain[i + 1], layers.BatchNormalization) else None
        following = chain[i + (2 if bn else 1)] if i + (2 if bn else 1) < len(chain) else None
        if isinstance(layer, (layers.Conv2D, layers.SeparableConv2D, layers.DepthwiseConv2D,
                              layers.Dense)):
            x = _quantized_layer(layer, bn, x)
            activation = keras.activations.serialize(layer.activation)
            activation = activation if isinstance(activation, str) else activation["config"]
            if activation not in ("linear", None):
                # A built-in activation runs on its own, so the logits of a softmax layer
                # (and a fused ReLU's output) are rounded where the int8 model rounds them.
                if activation not in _FUSED:
                    x = FakeQuant(name=f"{layer.name}_fq")(x)
                x = layers.Activation(activation, name=f"{layer.name}_act")(x)
                if activation in _FUSED:
                    x = FakeQuant(name=f"{layer.name}_act_fq")(x)
            elif not (isinstance(following, layers.Activation)
                      and _activation_name(following) in _FUSED):
                x = FakeQuant(name=f"{layer.name}_fq")(x)
            i += 2 if bn else 1
            continue
        if isinstance(layer, layers.LeakyReLU):
            # The converter runs it as an op of its own (TFLite fuses only ReLU-like
            # activations), so the int8 model stores both its input and its output.
            x = layers.LeakyReLU.from_config(layer.get_config())(x)
            x = FakeQuant(name=f"{layer.name}_fq")(x)
        elif isinstance(layer, layers.Activation):
            x = layers.Activation.from_config(layer.get_config())(x)
            if _activation_name(layer) in _FUSED:
                x = FakeQuant(name=f"{layer.name}_fq")(x)
        elif isinstance(layer, _PASS_THROUGH):
            x = type(layer).from_config(layer.get_config())(x)
        else:
            raise ValueError(f"quantization-aware training cannot simulate layer "
                             f"'{layer.name}' ({type(layer).__name__}) of '{model.name}'")
        i += 1
    return keras.Model(inputs, x, name=model.name)


def calibrate(model: keras.Model, faces: np.ndarray, batch: int = 100) -> None:
    """Set every :class:`FakeQuant` range from the float model's activations on ``faces``.

    The converter's calibration runs the float model on the same inputs
    (:func:`train.data.calibration_inputs`) and keeps each tensor's global min and max; so
    does this, with every rounding switched off while it observes.

    Args:
        model: a model from :func:`prepare`.
        faces: ``(N, 48, 48)`` raw pixel faces, the ones ``convert.quantize`` calibrates on.
    """
    quants = [layer for layer in model.layers if isinstance(layer, FakeQuant)]
    kernels = [layer for layer in model.layers if isinstance(layer, _SimulatedKernel)]
    for q in quants:
        q.range_min.assign(0.0)
        q.range_max.assign(0.0)
        q.observe = True
    for k in kernels:
        k.simulate = False
    try:
        x = calibration_inputs(faces)
        for start in range(0, len(x), batch):
            model(x[start:start + batch], training=False)
    finally:
        for q in quants:
            q.observe = False
        for k in kernels:
            k.simulate = True
    log.debug("calibrated %d activation ranges on %d faces", len(quants), len(faces))


class Recalibrate(keras.callbacks.Callback):
    """Re-set the activation ranges before every epoch, as the weights move.

    Args:
        faces: the calibration faces (see :func:`calibrate`).
    """

    def __init__(self, faces: np.ndarray) -> None:
        super().__init__()
        self.faces = faces

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        calibrate(self.model, self.faces)


def strip(model: keras.Model) -> keras.Model:
    """The float model a quantization-aware one stands for: same weights, no simulation.

    Plain Keras layers only, so it loads and converts without this module.
    """
    x = inputs = keras.Input(shape=model.inputs[0].shape[1:], name=model.inputs[0].name)
    plain = {QuantConv2D: layers.Conv2D, QuantDepthwiseConv2D: layers.DepthwiseConv2D,
             QuantDense: layers.Dense}
    for layer in _chain(model):
        if isinstance(layer, FakeQuant):
            continue
        clone = plain.get(type(layer), type(layer)).from_config(layer.get_config())
        x = clone(x)
        clone.set_weights(layer.get_weights())
    return keras.Model(inputs, x, name=model.name)


def is_quantization_aware(model: keras.Model) -> bool:
    """Whether ``model`` simulates int8 rounding (came from :func:`prepare`)."""
    return any(isinstance(layer, (FakeQuant, _SimulatedKernel)) for layer in model.layers)


def _chain(model: keras.Model) -> list[layers.Layer]:
    """The model's layers after its input, checked to form a single chain."""
    body = [layer for layer in model.layers if not isinstance(layer, layers.InputLayer)]
    previous = model.inputs[0]
    for layer in body:
        if layer.input is not previous:
            raise ValueError(f"quantization-aware training needs a chain of layers; "
                             f"'{layer.name}' of '{model.name}' does not follow the one before")
        previous = layer.output
    return body


def _activation_name(layer: layers.Activation) -> str:
    name = keras.activations.serialize(layer.activation)
    return name if isinstance(name, str) else name["config"]


def _quantized_layer(layer: layers.Layer, bn: layers.BatchNormalization | None,
                     x: keras.KerasTensor) -> keras.KerasTensor:
    """``layer`` (and the BatchNormalization after it, folded in) as simulated layers."""
    config = layer.get_config()
    config.update(activation="linear")
    weights = layer.get_weights()
    if isinstance(layer, layers.SeparableConv2D):
        depthwise, pointwise = weights[0], weights[1]
        bias = weights[2] if layer.use_bias else np.zeros(pointwise.shape[-1], np.float32)
        pointwise, bias = _fold(pointwise, bias, bn)
        dw = QuantDepthwiseConv2D(
            kernel_size=layer.kernel_size, strides=layer.strides, padding=layer.padding,
            depth_multiplier=layer.depth_multiplier, dilation_rate=layer.dilation_rate,
            use_bias=False, name=f"{layer.name}_dw")
        x = dw(x)
        dw.set_weights([depthwise])
        x = FakeQuant(name=f"{layer.name}_dw_fq")(x)  # the int8 model stores this tensor
        pw = QuantConv2D(pointwise.shape[-1], 1, use_bias=True, name=f"{layer.name}_pw")
        x = pw(x)
        pw.set_weights([pointwise, bias])
        return x
    kernel = weights[0]
    out_axis = -2 if isinstance(layer, layers.DepthwiseConv2D) else -1
    n_out = (kernel.shape[-2] * kernel.shape[-1] if out_axis == -2 else kernel.shape[-1])
    bias = weights[1] if layer.use_bias else np.zeros(n_out, np.float32)
    if isinstance(layer, layers.DepthwiseConv2D):
        kh, kw, c_in, mult = kernel.shape
        flat, bias = _fold(kernel.reshape(kh, kw, 1, c_in * mult), bias, bn)
        kernel = flat.reshape(kh, kw, c_in, mult)
        cls: type[layers.Layer] = QuantDepthwiseConv2D
    else:
        kernel, bias = _fold(kernel, bias, bn)
        cls = QuantConv2D if isinstance(layer, layers.Conv2D) else QuantDense
    config.update(use_bias=True)
    new = cls.from_config(config)
    x = new(x)
    new.set_weights([kernel, bias])
    return x


def _fold(kernel: np.ndarray, bias: np.ndarray,
          bn: layers.BatchNormalization | None) -> tuple[np.ndarray, np.ndarray]:
    """Kernel (output channels last) and bias with an inference-mode BatchNorm folded in."""
    if bn is None:
        return kernel, bias
    mean, var = ops.convert_to_numpy(bn.moving_mean), ops.convert_to_numpy(bn.moving_variance)
    gamma = ops.convert_to_numpy(bn.gamma) if bn.scale else np.ones_like(mean)
    beta = ops.convert_to_numpy(bn.beta) if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(var + bn.epsilon)
    return ((kernel * scale).astype(np.float32),
            ((bias - mean) * scale + beta).astype(np.float32))
