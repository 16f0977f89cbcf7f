"""Where frames come from, and how they wait for the workers.

- :mod:`edge.capture.sources`: the ``FrameSource`` protocol and its adapters (OpenCV
  cameras, files and streams; Picamera2; a folder of still images);
- :mod:`edge.capture.reconnect`: a source that comes back after it goes away, with backoff;
- :mod:`edge.capture.queues`: the bounded frame queue and its drop-oldest policy;
- :mod:`edge.capture.image_files`: reading one image file safely (size checked from its
  header before decoding) and listing a folder's images.
"""
