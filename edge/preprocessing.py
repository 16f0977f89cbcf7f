"""The input contract between training and the device, defined once.

The model sees a 48x48 single-channel 8-bit face with raw pixel values 0..255; any
scaling to [0, 1] lives inside the model graph (a ``Rescaling`` layer), so the device
feeds pixels straight into an int8/uint8 input tensor with no float math. Training,
conversion and the edge runner all import these names, so what the device feeds the
model is by construction what it was trained on.
"""

from __future__ import annotations

import numpy as np

#: Class names in model output order (FER-2013 label ids 0..6).
EMOTIONS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")

#: Side of the square face the model takes, in pixels.
FACE_SIZE = 48

#: Shape of one model input sample (height, width, channels).
INPUT_SHAPE: tuple[int, int, int] = (FACE_SIZE, FACE_SIZE, 1)

#: Machine-readable form of the contract, written into every model card.
PREPROCESSING: dict[str, object] = {
    "color": "grayscale",
    "size": [FACE_SIZE, FACE_SIZE],
    "channels": 1,
    "dtype": "uint8",
    "range": [0, 255],
    "scaling": "inside the model (Rescaling 1/255); feed raw pixels",
    "resize": "cv2.INTER_AREA when shrinking, cv2.INTER_LINEAR when enlarging",
    "crop": "square face box with margin, see edge.vision.faces",
}


def resize_face(gray_crop: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Resize a grayscale face crop to the model's ``FACE_SIZE`` square.

    Args:
        gray_crop: 2-D uint8 array (any size); already a square crop around the face.
        out: optional preallocated ``(FACE_SIZE, FACE_SIZE)`` uint8 array to write into.

    Returns:
        The ``(FACE_SIZE, FACE_SIZE)`` uint8 face (``out`` when given).
    """
    import cv2  # local: the training side uses this module without OpenCV on the hot path

    if gray_crop.ndim != 2:
        raise ValueError(f"expected a 2-D grayscale crop, got shape {gray_crop.shape}")
    if out is None:
        out = np.empty((FACE_SIZE, FACE_SIZE), dtype=np.uint8)
    if gray_crop.shape == (FACE_SIZE, FACE_SIZE):
        np.copyto(out, gray_crop)
        return out
    shrinking = gray_crop.shape[0] >= FACE_SIZE
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    cv2.resize(gray_crop, (FACE_SIZE, FACE_SIZE), dst=out, interpolation=interp)
    return out
