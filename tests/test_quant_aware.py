"""Quantization-aware fine-tuning: folding, the int8 simulation, and the training run."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

import keras

from tests.fixtures import make_faces
from train import quant_aware
from train.__main__ import main as train_main
from train.data import calibration_inputs
from train.presets import build


def _with_trained_batchnorm(model: keras.Model, seed: int = 0) -> keras.Model:
    """Give every BatchNormalization statistics far from identity, so folding matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 2.0, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.2, 3.0, var.shape)])
    return model


@pytest.mark.parametrize("arch", ["edge", "edge-plus", "edge-sep", "mlp"])
def test_fold_and_strip_keep_the_function(arch: str) -> None:
    model = _with_trained_batchnorm(build(arch))
    faces, _ = make_faces(3)
    x = faces[..., None].astype(np.float32)
    plain = quant_aware.strip(quant_aware.prepare(model))
    np.testing.assert_allclose(plain.predict(x, verbose=0), model.predict(x, verbose=0),
                               atol=2e-5)
    assert plain.name == model.name
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in plain.layers)
    assert not quant_aware.is_quantization_aware(plain)
    assert {type(layer).__module__.split(".")[0] for layer in plain.layers} == {"keras"}


def test_calibrated_ranges_are_the_float_activations(trained_run: Path) -> None:
    model = keras.models.load_model(trained_run / "best.keras")
    faces, _ = make_faces(4, seed=3)
    qat = quant_aware.prepare(model)
    quant_aware.calibrate(qat, faces)
    x = calibration_inputs(faces)  # what the converter calibrates on
    relus = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)]
    probe = keras.Model(model.inputs, [relus[0].output, model.layers[-1].input])
    first, logits_input = probe.predict(x, verbose=0)
    logits = logits_input @ model.layers[-1].kernel.numpy() + model.layers[-1].bias.numpy()
    fq = [layer for layer in qat.layers if isinstance(layer, quant_aware.FakeQuant)]
    assert fq[0].range_min.numpy() == pytest.approx(0.0)
    assert fq[0].range_max.numpy() == pytest.approx(first.max(), rel=1e-4)
    assert fq[-1].range_min.numpy() == pytest.approx(logits.min(), rel=1e-3)
    assert fq[-1].range_max.numpy() == pytest.approx(logits.max(), rel=1e-3)


def test_the_simulation_tracks_the_converted_int8_model(trained_run: Path) -> None:
    from ai_edge_litert.interpreter import Interpreter

    from convert.tflite import convert

    model = keras.models.load_model(trained_run / "best.keras")
    faces, _ = make_faces(30, seed=5)
    calibration, held = faces[:70], faces[70:]
    qat = quant_aware.prepare(model)
    quant_aware.calibrate(qat, calibration)
    # Compared at the logits: the softmax squeezes this tiny model's differences below
    # the int8 output's own rounding step.
    plain = quant_aware.strip(qat)
    float_logits = keras.Model(plain.inputs, plain.layers[-2].output)
    simulated_logits = keras.Model(qat.inputs, qat.layers[-2].output)
    assert isinstance(qat.layers[-2], quant_aware.FakeQuant)
    x = held[..., None].astype(np.float32)
    simulated, float_ = simulated_logits.predict(x, verbose=0), float_logits.predict(x, verbose=0)

    interpreter = Interpreter(model_content=convert(float_logits, "int8", calibration))
    interpreter.resize_tensor_input(0, x.shape)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero = inp["quantization"]
    interpreter.set_tensor(inp["index"], np.round(x / scale + zero).astype(np.int8))
    interpreter.invoke()
    scale, zero = out["quantization"]
    int8 = (interpreter.get_tensor(out["index"]).astype(np.float32) - zero) * scale

    steps = int8 / scale  # the int8 file's logits, in steps of its output scale
    sim_err, float_err = np.abs(simulated / scale - steps), np.abs(float_ / scale - steps)
    # The file requantizes in fixed point, so a minority of its logits land one step
    # from the simulation's; never further. The simulation names the file's exact step
    # more often than rounding the float model's logits does, and is closer on average.
    # (Over twelve training seeds: exact 81-97 % against 61-88 %, mean error 0.08-0.43
    # of the float model's, which is up to 1.2-2.0 steps off somewhere.)
    assert sim_err.max() < 1.01
    assert (sim_err < 0.5).mean() > (np.abs(np.round(float_ / scale) - steps) < 0.5).mean()
    assert sim_err.mean() < 0.6 * float_err.mean()


def test_leaky_relu_outputs_are_rounded_as_the_int8_model_stores_them() -> None:
    qat = quant_aware.prepare(_with_trained_batchnorm(build("edge-sep")))
    names = [layer.name for layer in qat.layers]
    leaky = [i for i, layer in enumerate(qat.layers)
             if isinstance(layer, keras.layers.LeakyReLU)]
    assert len(leaky) == 8
    for i in leaky:  # its input (the convolution's output) and its output are both stored
        assert isinstance(qat.layers[i - 1], quant_aware.FakeQuant), names[i - 1]
        assert isinstance(qat.layers[i + 1], quant_aware.FakeQuant), names[i + 1]


def test_a_layer_it_cannot_simulate_is_named() -> None:
    inputs = keras.Input((48, 48, 1))
    x = keras.layers.Conv2D(4, 3)(inputs)
    x = keras.layers.LayerNormalization(name="ln")(x)
    with pytest.raises(ValueError, match=r"'ln' \(LayerNormalization\)"):
        quant_aware.prepare(keras.Model(inputs, x))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    added = keras.layers.Add(name="skip")([a, inputs])
    with pytest.raises(ValueError, match="chain"):
        quant_aware.prepare(keras.Model(inputs, added))


def test_a_quantization_aware_run_saves_a_plain_folded_model_and_resumes(
        trained_run: Path, fer_csv: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    from convert.quantize import main as convert_main

    run = tmp_path / "qat"
    argv = ["--data", str(fer_csv), "--out", str(run), "--batch-size", "16", "--arch", "edge",
            "--val-fraction", "0.2", "--lr", "1e-12", "--lr-schedule", "cosine",
            "--init-from", str(trained_run / "best.keras"), "--quantize-aware"]
    assert train_main([*argv, "--epochs", "1"]) == 0
    assert quant_aware.is_quantization_aware(keras.models.load_model(run / "last.keras"))
    with caplog.at_level(logging.ERROR, logger="train"):
        plain_resume = [a for a in argv if a != "--quantize-aware"]
        assert train_main([*plain_resume, "--epochs", "2", "--resume"]) == 2
    assert "pass --quantize-aware" in caplog.text
    assert train_main([*argv, "--epochs", "2", "--resume"]) == 0

    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs"] == 2 and metrics["config"]["quantize_aware"] is True
    assert metrics["init_from"]["model"] == str(trained_run / "best.keras")
    best = keras.models.load_model(run / "best.keras")
    assert not quant_aware.is_quantization_aware(best)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in best.layers)
    # At a learning rate this small the weights stay put: the saved model is the parent's
    # function, folded.
    parent = keras.models.load_model(trained_run / "best.keras")
    x = make_faces(2, seed=9)[0][..., None].astype(np.float32)
    np.testing.assert_allclose(best.predict(x, verbose=0), parent.predict(x, verbose=0),
                               atol=1e-5)
    convert = ["--model", str(run / "best.keras"), "--data", str(fer_csv),
               "--out", str(tmp_path / "models"), "--calibration", "40", "--min-agreement", "0.8"]
    assert convert_main(convert) == 0
    # The int8 file must agree with the model that was fine-tuned, which it stands for.
    card = json.loads((tmp_path / "models" / "emotion_int8.json").read_text())
    assert card["parity"]["reference"]["keras"] == str(trained_run / "best.keras")
    assert card["source"]["keras"] == str(run / "best.keras")
    assert card["training"]["config"]["quantize_aware"] is True
    assert convert_main([*convert, "--reference", str(tmp_path / "gone.keras")]) == 2
