"""Where a run trains: the default device, every device of one machine, or several machines.

- ``--distribute mirrored``: ``tf.distribute.MirroredStrategy`` keeps a copy of the model
  on every GPU (or, with none, on every logical CPU device) and averages their gradients
  each step.
- ``--distribute multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` does the
  same across machines. Each machine runs the same command with its own ``TF_CONFIG``
  (the standard cluster and task description); the chief (``chief`` task, else worker 0)
  writes the run folder.

``--batch-size`` is per replica: the global batch is ``batch_size x replicas`` (replicas
over all machines), and the learning rate scales with it (the linear scaling rule), so a
recipe keeps its meaning on any number of devices. Every mode trains through the same
loop (:mod:`train.loop`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """This process's place in a multi-worker cluster, read from ``TF_CONFIG``."""

    kind: str  # "chief" or "worker"
    index: int
    workers: int  # processes that train (the chief counts)
    has_chief: bool = False  # the cluster names a chief task

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder."""
        return self.kind == "chief" or (self.index == 0 and not self.has_chief)


#: Limits of a cluster this trainer runs on: far above a lab's machines.
_MAX_TF_CONFIG = 100_000
_MAX_WORKERS = 256


def _host_port_ok(entry: str) -> bool:
    """An ASCII ``host:port`` (a name, an IPv4 address or a bracketed IPv6 one)."""
    host, _, port = entry.rpartition(":")
    if not host or not entry.isascii() or not port.isdecimal() or not 1 <= int(port) <= 65535:
        return False
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return all(c.isalnum() or c in ".-:" for c in host)


def check_hosts_resolve(environ: Mapping[str, str]) -> None:
    """Every host of ``TF_CONFIG``'s cluster resolves; ``ValueError`` names one that does
    not (TensorFlow would wait for it for minutes without a word)."""
    cluster = json.loads(environ["TF_CONFIG"])["cluster"]
    for entry in (h for hosts in cluster.values() for h in hosts):
        host = entry.rpartition(":")[0].strip("[]")
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            raise ValueError(f"TF_CONFIG: the host of {entry!r} does not resolve; check the "
                             "name (every machine must reach every other)") from None


def task_from_env(environ: Mapping[str, str]) -> Task:
    """Read and check ``TF_CONFIG`` without TensorFlow; ``ValueError`` names what is wrong.

    Example, worker 1 of two::

        TF_CONFIG='{"cluster": {"worker": ["host-a:12345", "host-b:12345"]},
                    "task": {"type": "worker", "index": 1}}'
    """
    raw = environ.get("TF_CONFIG", "")
    if not raw.strip():
        raise ValueError("TF_CONFIG: not set; multi-worker training needs the cluster and this "
                         "task, e.g. '{\"cluster\": {\"worker\": [\"a:12345\", \"b:12345\"]}, "
                         "\"task\": {\"type\": \"worker\", \"index\": 0}}'")
    if len(raw) > _MAX_TF_CONFIG:
        raise ValueError(f"TF_CONFIG: {len(raw):,} characters; a cluster's is a few hundred")
    try:
        conf = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TF_CONFIG: not JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:
        raise ValueError("TF_CONFIG: nested too deeply to be a cluster") from None
    cluster = conf.get("cluster") if isinstance(conf, dict) else None
    task = conf.get("task") if isinstance(conf, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError("TF_CONFIG: needs a 'cluster' object and a 'task' object")
    for kind, hosts in cluster.items():
        if kind not in ("chief", "worker", "evaluator") or not isinstance(hosts, list) or not all(
                isinstance(h, str) and _host_port_ok(h) for h in hosts):
            raise ValueError(f"TF_CONFIG: cluster.{kind!r}: must be chief/worker, a list of "
                             "'host:port' strings (ASCII host names, ports 1-65535)")
    every = [h for hosts in cluster.values() for h in hosts]
    if len(every) > _MAX_WORKERS:
        raise ValueError(f"TF_CONFIG: {len(every):,} tasks in the cluster; at most "
                         f"{_MAX_WORKERS}")
    if len(set(every)) < len(every):
        raise ValueError("TF_CONFIG: the same host:port appears twice in the cluster; each "
                         "task needs its own")
    if len(cluster.get("chief", [])) > 1:
        raise ValueError("TF_CONFIG: cluster.chief: at most one chief")
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in ("chief", "worker"):
        raise ValueError(f"TF_CONFIG: task.type: must be 'chief' or 'worker', got {kind!r}")
    if isinstance(index, bool) or not isinstance(index, int) or not (
            0 <= index < len(cluster.get(kind, []))):
        raise ValueError(f"TF_CONFIG: task.index: must name one of the {len(cluster.get(kind, []))}"
                         f" '{kind}' entries of the cluster, got {index!r}")
    workers = len(cluster.get("chief", [])) + len(cluster.get("worker", []))
    return Task(kind, index, workers, has_chief=bool(cluster.get("chief")))


@dataclass(frozen=True)
class Replicas:
    """The devices a run trains on: a strategy (or none) and how many replicas it has."""

    strategy: Any | None
    count: int
    workers: int = 1
    chief: bool = True

    @classmethod
    def for_name(cls, name: str) -> Replicas:
        """``none``: the default device; ``mirrored``: every GPU, else every CPU device;
        ``multi-worker``: the cluster ``TF_CONFIG`` describes.

        Call it before anything else touches TensorFlow: a multi-worker strategy must
        set up its collectives before TensorFlow starts.
        """
        if name == "none":
            return cls(None, 1)
        import tensorflow as tf

        if name == "multi-worker":
            task = task_from_env(os.environ)
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
            count = int(strategy.num_replicas_in_sync)
            log.info("multi-worker: %s %d of %d worker(s), %d replica(s) in all%s", task.kind,
                     task.index, task.workers, count,
                     "; this one writes the run folder" if task.chief else "")
            return cls(strategy, count, task.workers, task.chief)
        devices = (tf.config.list_logical_devices("GPU")
                   or tf.config.list_logical_devices("CPU"))
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices])
        log.info("mirrored over %d device(s): %s", strategy.num_replicas_in_sync,
                 ", ".join(d.name for d in devices))
        return cls(strategy, int(strategy.num_replicas_in_sync))

    def barrier(self) -> None:
        """Across workers, wait until every one has come here (one tiny all-reduce): a
        worker that ends while the chief still writes the run folder would have the
        chief's collectives report it as crashed. Nothing to wait for otherwise."""
        if self.workers < 2:
            return
        import tensorflow as tf

        one = self.strategy.run(lambda: tf.constant(1.0))
        self.strategy.reduce(tf.distribute.ReduceOp.SUM, one, axis=None)

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Build and load models inside this, so their variables live on every replica."""
        if self.strategy is None:
            yield
            return
        with self.strategy.scope():
            yield
