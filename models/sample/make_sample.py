"""Regenerate the bundled sample input from the public-domain NASA astronaut portrait.

The portrait (Eileen Collins, NASA, public domain) ships with scikit-image as
``skimage.data.astronaut()``. This writes ``astronaut.jpg`` (the photograph) and
``astronaut.mp4`` (a 640x480, 15 fps, 6 s slow pan and zoom over it, so the face moves
and changes size the way it would in front of a camera).

    pip install scikit-image && python models/sample/make_sample.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from skimage import data

OUT = Path(__file__).resolve().parent
W, H, FPS, SECONDS = 640, 480, 15, 6


def main() -> None:
    photo = cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)
    cv2.imwrite(str(OUT / "astronaut.jpg"), photo, [cv2.IMWRITE_JPEG_QUALITY, 90])
    big = cv2.resize(photo, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    writer = cv2.VideoWriter(str(OUT / "astronaut.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), FPS,
                             (W, H))
    n = FPS * SECONDS
    for i in range(n):
        t = 0.5 - 0.5 * np.cos(np.pi * i / (n - 1))  # ease in and out
        zoom = 1.0 + 0.35 * np.sin(np.pi * t)  # closer in the middle of the clip
        cw, ch = W * 1.25 / zoom, H * 1.25 / zoom
        cx = 430 + 120 * t  # the face sits near x=450, y=230 in the 1024 image
        cy = 300 + 40 * np.sin(2 * np.pi * t)
        m = np.array([[W / cw, 0, -(cx - cw / 2) * W / cw],
                      [0, H / ch, -(cy - ch / 2) * H / ch]], np.float32)
        writer.write(cv2.warpAffine(big, m, (W, H), flags=cv2.INTER_AREA,
                                    borderMode=cv2.BORDER_REFLECT))
    writer.release()


if __name__ == "__main__":
    main()
