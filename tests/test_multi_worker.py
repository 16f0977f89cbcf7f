"""--distribute multi-worker: two worker processes on loopback train as one, and resume."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fixtures import ROOT, wait_until
from train.strategy import task_from_env


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def start_workers(out: Path, data: Path, *extra: str) -> list[subprocess.Popen]:
    hosts = [f"127.0.0.1:{p}" for p in free_ports(2)]
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps(
            {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}})}
        log = open(out.parent / f"worker{index}.log", "ab")  # noqa: SIM115 (the process owns it)
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "train", "--data", str(data), "--arch", "mlp",
             "--batch-size", "8", "--val-fraction", "0.2", "--distribute", "multi-worker",
             "--out", str(out), *extra], cwd=ROOT, env=env, stdout=log, stderr=log))
    return procs


def finish(procs: list[subprocess.Popen], out: Path) -> None:
    for i, p in enumerate(procs):
        code = p.wait(timeout=600)
        assert code == 0, (out.parent / f"worker{i}.log").read_text()[-3000:]


def saved_epoch(out: Path) -> int:
    try:
        return json.loads((out / "state.json").read_text())["epoch"]
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def test_two_workers_train_as_one_and_only_the_chief_writes(fer_csv: Path,
                                                             tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    out = tmp_path / "run"
    finish(start_workers(out, fer_csv, "--epochs", "2"), out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["replicas"] == {"count": 2, "workers": 2, "global_batch": 16,
                             "peak_learning_rate": 0.002}
    assert m["config"]["distribute"] == "multi-worker" and m["epochs"] == 2
    for name in ("best.keras", "last.keras", "history.csv", "state.json", "curves.png"):
        assert (out / name).is_file(), name
    assert len((out / "history.csv").read_text().splitlines()) == 3  # header + 2 epochs
    logs = [(tmp_path / f"worker{i}.log").read_text() for i in range(2)]
    assert "this one writes the run folder" in logs[0]
    assert "worker done; the chief writes" in logs[1]


def test_a_killed_worker_and_a_restart_with_resume_finish_the_run(fer_csv: Path,
                                                                   tmp_path: Path) -> None:
    pytest.importorskip("tensorflow")
    out = tmp_path / "run"
    # Far more epochs than can pass before the kill: the kill lands mid-run.
    procs = start_workers(out, fer_csv, "--epochs", "100000", "--patience", "100000")
    assert wait_until(lambda: saved_epoch(out) >= 2 or any(p.poll() is not None
                                                          for p in procs), timeout=300)
    assert saved_epoch(out) >= 2, "no checkpoint within 300 s"
    assert all(p.poll() is None for p in procs), "a worker ended before the kill"
    procs[1].send_signal(signal.SIGKILL)
    procs[1].wait(timeout=60)
    # Its peer is stuck in (or failing at) a collective step: restart all, as documented.
    procs[0].kill()
    procs[0].wait(timeout=60)
    done = saved_epoch(out)
    finish(start_workers(out, fer_csv, "--epochs", str(done + 2), "--patience", "100000",
                         "--resume"), out)
    m = json.loads((out / "metrics.json").read_text())
    assert m["epochs"] == done + 2 and m["replicas"]["workers"] == 2
    assert "resuming" in (tmp_path / "worker0.log").read_text()


@pytest.mark.parametrize(("value", "message"), ids=lambda v: str(v)[:30], argvalues=[
    ("", "not set"),
    ("{", "not JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', "needs a 'cluster' object and a 'task'"),
    ('{"cluster": {"worker": ["a"]}, "task": {"type": "worker", "index": 0}}', "host:port"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}', "task.type"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": 1}}', "task.index"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "appears twice"),
    ('{"cluster": {"worker": ["a:\u0661\u0662"]}, "task": {"type": "worker", "index": 0}}',
     "ASCII"),
    ('{"cluster": {"worker": ["\udc80:1"]}, "task": {"type": "worker", "index": 0}}', "ASCII"),
    ('{"cluster": {"worker": ["a:70000"]}, "task": {"type": "worker", "index": 0}}', "1-65535"),
    ("[" * 100_001, "characters"),
    ("[" * 50_000, "nested too deeply"),
    (json.dumps({"cluster": {"worker": [f"h:{i + 1}" for i in range(2_000)]},
                 "task": {"type": "worker", "index": 0}}), "at most 256"),
])
def test_a_bad_tf_config_is_named(value: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task_from_env({"TF_CONFIG": value})


def test_the_chief_is_the_chief_task_else_worker_0() -> None:
    two = '{"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": %d}}'
    assert task_from_env({"TF_CONFIG": two % 0}).chief
    assert not task_from_env({"TF_CONFIG": two % 1}).chief
    with_chief = ('{"cluster": {"chief": ["c:1"], "worker": ["a:1"]}, '
                  '"task": {"type": "worker", "index": 0}}')
    task = task_from_env({"TF_CONFIG": with_chief})
    assert not task.chief and task.workers == 2


def test_a_host_that_does_not_resolve_is_named() -> None:
    from train.strategy import check_hosts_resolve

    check_hosts_resolve({"TF_CONFIG": '{"cluster": {"worker": ["localhost:1"]}}'})
    with pytest.raises(ValueError, match="does not resolve"):
        check_hosts_resolve({"TF_CONFIG": '{"cluster": {"worker": ["no-such-host.invalid:1"]}}'})


def test_a_bad_tf_config_exits_2_before_tensorflow(tmp_path: Path) -> None:
    env = {**os.environ, "TF_CONFIG": "{"}
    (tmp_path / "x.csv").write_text("emotion,pixels,Usage\n")
    r = subprocess.run([sys.executable, "-m", "train", "--data", str(tmp_path / "x.csv"),
                        "--distribute", "multi-worker", "--out", str(tmp_path / "run")],
                       cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "TF_CONFIG: not JSON" in r.stderr
    assert "Traceback" not in r.stderr
