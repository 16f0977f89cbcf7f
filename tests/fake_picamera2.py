"""A stand-in for the ``picamera2`` module with the API surface the adapter uses.

It serves frames from a list of BGR images: ``main`` as RGB888 (which Picamera2 lays out
as BGR) or YUV420, ``lores`` as YUV420, each YUV420 array being (h * 3 / 2, w) with the Y
plane on top, as on a Raspberry Pi.
"""

from __future__ import annotations

import types
from typing import ClassVar

import cv2
import numpy as np


class FakeRequest:
    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self._arrays = arrays
        self.released = False

    def make_array(self, name: str) -> np.ndarray:
        if self.released:
            raise RuntimeError("request already released")
        return self._arrays[name]

    def release(self) -> None:
        self.released = True


class FakePicamera2:
    # Set per test by module(), like the one camera a Pi has.
    frames: ClassVar[list[np.ndarray]] = []
    fail_after: ClassVar[int | None] = None
    instances: ClassVar[list[FakePicamera2]] = []

    def __init__(self, camera_num: int = 0) -> None:
        self.config: dict | None = None
        self.started = False
        self.closed = False
        self.served = 0
        FakePicamera2.instances.append(self)

    def create_video_configuration(self, main: dict, lores: dict | None = None,
                                   controls: dict | None = None) -> dict:
        return {"main": dict(main), "lores": dict(lores or {}), "controls": dict(controls or {})}

    def configure(self, config: dict) -> None:
        w, h = config["lores"]["size"]
        if w % 2 or h % 2:
            raise ValueError("YUV420 needs even dimensions")
        self.config = config

    def start(self) -> None:
        if self.config is None:
            raise RuntimeError("configure first")
        self.started = True

    def capture_request(self) -> FakeRequest:
        if not self.started:
            raise RuntimeError("camera not started")
        if FakePicamera2.fail_after is not None and self.served >= FakePicamera2.fail_after:
            raise RuntimeError("Camera frontend has timed out!")
        bgr = self.frames[self.served % len(self.frames)]
        self.served += 1
        assert self.config is not None
        main_cfg, lores_cfg = self.config["main"], self.config["lores"]
        main = cv2.resize(bgr, main_cfg["size"])
        arrays = {
            "main": main if main_cfg["format"] == "RGB888" else _yuv420(main),
            "lores": _yuv420(cv2.resize(bgr, lores_cfg["size"], interpolation=cv2.INTER_AREA)),
        }
        return FakeRequest(arrays)

    def stop(self) -> None:
        self.started = False

    def close(self) -> None:
        self.closed = True


def _yuv420(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420)


def module(frames: list[np.ndarray], fail_after: int | None = None) -> types.ModuleType:
    """A ``picamera2`` module object serving ``frames``."""
    FakePicamera2.frames = frames
    FakePicamera2.fail_after = fail_after
    FakePicamera2.instances = []
    mod = types.ModuleType("picamera2")
    mod.Picamera2 = FakePicamera2
    return mod
