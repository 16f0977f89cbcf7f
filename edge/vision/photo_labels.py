"""The faces in a still photo and their emotions: one call, shared by ``edge.predict`` and
the web page's photo upload."""

from __future__ import annotations

import cv2
import numpy as np

from edge.model import EmotionClassifier
from edge.vision.faces import FaceDetector, extract_faces


def predict_image(image: np.ndarray, detector: FaceDetector,
                  classifier: EmotionClassifier, margin: float) -> list[dict]:
    """Faces in a BGR or gray image: ``[{"box", "emotion", "confidence", "probs"}]``."""
    gray = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    boxes = detector.detect(gray)
    if not boxes:
        return []
    faces = []
    for box, probs in zip(boxes, classifier.probabilities(extract_faces(gray, boxes, margin)),
                          strict=True):
        emotion = max(probs, key=probs.__getitem__)
        faces.append({"box": list(box), "emotion": emotion,
                      "confidence": round(probs[emotion], 4),
                      "probs": {k: round(v, 4) for k, v in probs.items()}})
    return faces
