"""Finding faces in frames and following them over time.

- :mod:`edge.vision.boxes`: the ``Box`` type and all box arithmetic (overlap, IoU,
  de-duplication, widening, containment), once;
- :mod:`edge.vision.motion`: what moved, on a tiny gray copy of each frame;
- :mod:`edge.vision.schedule`: where the detector looks in each frame (motion first, or a
  periodic full search);
- :mod:`edge.vision.faces`: Haar-cascade detection and the face crops the model reads;
- :mod:`edge.vision.follow`: following a known face by template matching between searches;
- :mod:`edge.vision.tracking`: one id per face, smoothed emotions, and the events;
- :mod:`edge.vision.photo_labels`: detect and classify the faces of one still photo.
"""
