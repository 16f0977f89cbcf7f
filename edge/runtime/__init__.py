"""Running the device: threads, queues, timings, and the service around them.

- :mod:`edge.runtime.pipeline`: capture, worker and sink threads on bounded queues, one
  stop event;
- :mod:`edge.runtime.service`: the long-running loop (signals, periodic stats, exit codes);
- :mod:`edge.runtime.notify`: the systemd notify protocol (ready, status, watchdog);
- :mod:`edge.runtime.sysinfo`: the machine a figure was measured on (CPU model and flags).
"""
