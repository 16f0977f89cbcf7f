"""Model presets in one registry, each reporting parameters and multiply-accumulates.

Every model takes raw 48x48x1 pixels (0..255) and scales them itself, so a quantized
model's int8 input is just the pixel value shifted by its zero point (see
:mod:`edge.preprocessing`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
from keras import layers

from edge.preprocessing import EMOTIONS, INPUT_SHAPE


@dataclass(frozen=True)
class Preset:
    """A named model architecture."""

    name: str
    summary: str
    build: Callable[[], keras.Model]


def _stem(name: str) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    return inputs, layers.Rescaling(1.0 / 255, name="scale")(inputs)


def _head(x: keras.KerasTensor) -> keras.KerasTensor:
    # float32 softmax even under a mixed-precision policy, so probabilities stay exact.
    return layers.Dense(len(EMOTIONS), activation="softmax", dtype="float32", name="probs")(x)


def _dense_block(x: keras.KerasTensor, units: int, dropout: float) -> keras.KerasTensor:
    x = layers.Dense(units)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    return layers.Dropout(dropout)(x)


def build_seed() -> keras.Model:
    """The reference notebooks' CNN: 4 conv blocks, 2 dense blocks (4,478,727 parameters)."""
    inputs, x = _stem("seed")
    for filters, kernel in ((64, 3), (128, 5), (512, 3), (512, 3)):
        x = layers.Conv2D(filters, kernel, padding="same")(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(0.25)(x)
    x = layers.Flatten()(x)
    for units in (256, 512):
        x = _dense_block(x, units, 0.25)
    return keras.Model(inputs, _head(x), name="seed")


def build_mlp() -> keras.Model:
    """Dense baseline: what a CNN has to beat."""
    inputs, x = _stem("mlp")
    x = layers.Flatten()(x)
    for units in (512, 256):
        x = _dense_block(x, units, 0.3)
    return keras.Model(inputs, _head(x), name="mlp")


def _conv_bn_relu(x: keras.KerasTensor, filters: int, separable: bool) -> keras.KerasTensor:
    conv = layers.SeparableConv2D if separable else layers.Conv2D
    x = conv(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.Activation("relu")(x)


def _edge_body(name: str, top_filters: int, top_separable: bool) -> keras.Model:
    inputs, x = _stem(name)
    for convs, filters, separable, drop in ((1, 32, False, 0.1), (2, 64, False, 0.15),
                                            (2, 128, False, 0.2),
                                            (2, top_filters, top_separable, 0.25)):
        for _ in range(convs):
            x = _conv_bn_relu(x, filters, separable)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Dropout(drop)(x)
    x = layers.Flatten()(x)
    x = layers.Dense(128, use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Dropout(0.4)(x)
    return keras.Model(inputs, _head(x), name=name)


def build_edge() -> keras.Model:
    """Compact VGG-style CNN for small CPUs (~0.68 M parameters, ~68 M MACs).

    Full 3x3 convolutions where channels are few and the resolution high (cheap in
    parameters, where separable convolutions lose most accuracy), depthwise-separable
    ones at 6x6 where channels are many, and a small dense head that keeps the spatial
    layout of the face (where the mouth and brows are) instead of pooling it away.
    The 48x48 stage has a single convolution: a second one there doubled the training
    time per epoch on a 2-core CPU (memory-bound) for little capacity.
    """
    return _edge_body("edge", top_filters=256, top_separable=True)


def build_edge_plus() -> keras.Model:
    """``edge`` with full 3x3 convolutions of 160 filters at 6x6 (~0.88 M parameters, ~80 M MACs).

    Spends the rest of the device budget (1 MB int8, 0.5 ms per face) where ``edge`` is
    thinnest: its 6x6 stage has 0.1 M parameters and 4 M MACs; this one has 0.41 M and
    15 M, for about 12 % more time per face (int8: 0.43 ms against 0.39 on the workstation).
    """
    return _edge_body("edge-plus", top_filters=160, top_separable=False)


def _separable_block(x: keras.KerasTensor, filters: int) -> keras.KerasTensor:
    x = layers.SeparableConv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    return layers.LeakyReLU(0.1)(x)


def build_edge_sep() -> keras.Model:
    """Separable convolutions and global average pooling (~0.25 M parameters, ~40 M MACs).

    The shape of the smallest published FER+ models: one full 3x3 convolution on the
    pixels (separable ones lose most where channels are few), then depthwise-separable
    pairs per stage, LeakyReLU, spatial dropout (whole feature maps, so neighbouring
    pixels cannot stand in for a dropped one) and global average pooling in place of a
    dense head, which leaves most of the parameters in the convolutions.
    """
    inputs, x = _stem("edge-sep")
    x = layers.Conv2D(32, 3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.LeakyReLU(0.1)(x)
    for filters in (64, 128, 256):
        x = _separable_block(x, filters)
        x = _separable_block(x, filters)
        x = layers.MaxPooling2D(2)(x)
        x = layers.SpatialDropout2D(0.1)(x)
    x = _separable_block(x, 384)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.3)(x)
    return keras.Model(inputs, _head(x), name="edge-sep")


#: Every preset by name; ``train.config.Arch`` lists the same names for the CLI, which must
#: answer ``--help`` without importing Keras (a test keeps the two equal).
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("edge", "compact VGG-style CNN with separable top stage", build_edge),
        Preset("edge-plus", "edge with a full-convolution top stage, 0.88 M parameters (default)",
               build_edge_plus),
        Preset("edge-sep", "separable convolutions and global average pooling, 0.25 M "
               "parameters", build_edge_sep),
        Preset("seed", "reference notebooks' CNN, 4.48 M parameters", build_seed),
        Preset("mlp", "dense baseline", build_mlp),
    )
}


def build(name: str) -> keras.Model:
    """Build a fresh model of the named preset (see :data:`PRESETS`)."""
    try:
        return PRESETS[name].build()
    except KeyError:
        raise ValueError(f"unknown preset '{name}'; choose one of {', '.join(PRESETS)}") from None


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (batch 1) over conv and dense layers.

    Normalisation, activations and pooling are left out: they fold into the neighbouring
    convolution or cost a small fraction of it.
    """
    total = 0
    for layer in model.layers:
        if isinstance(layer, layers.SeparableConv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += h * w * (kh * kw * c_in * layer.depth_multiplier
                              + c_in * layer.depth_multiplier * c_out)
        elif isinstance(layer, layers.DepthwiseConv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * c_out
        elif isinstance(layer, layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            c_in = layer.input.shape[-1]
            kh, kw = layer.kernel_size
            total += h * w * kh * kw * c_in * c_out // layer.groups
        elif isinstance(layer, layers.Dense):
            total += layer.input.shape[-1] * layer.units
    return int(total)


def with_flip_averaging(model: keras.Model) -> keras.Model:
    """The model averaged over the face and its mirror image, in one graph.

    Test-time augmentation folded into the model: the device runs one invoke and gets
    the averaged probabilities, at twice the multiply-accumulates.
    """
    inputs = keras.Input(shape=INPUT_SHAPE, name="pixels")
    mirrored = layers.Lambda(lambda x: keras.ops.flip(x, axis=2), name="mirror")(inputs)
    probs = layers.Average(name="flip_average")([model(inputs), model(mirrored)])
    return keras.Model(inputs, probs, name=f"{model.name}_flip")
