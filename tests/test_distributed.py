"""Many hosts: two processes joined by `jax.distributed.initialize` train like one.

Two local processes, each with 4 simulated CPU devices and gloo CPU collectives, form
one 8-device mesh and train a small MLP data-parallel and FSDP
(`tests/distributed_worker.py`); a single process with 8 devices runs the same steps.
The losses must agree. Every subprocess has a timeout and both workers are killed if
either fails, so a hung coordinator cannot hang the test run.
"""

from __future__ import annotations

import os
import pathlib
import re
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from .helpers import xla_flags


TESTS = pathlib.Path(__file__).resolve().parent
WORKER = TESTS / "distributed_worker.py"
TIMEOUT_S = 120


def _env() -> dict[str, str]:
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env["XLA_FLAGS"] = xla_flags()  # the worker adds its own device count
    src = str(TESTS.parent / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_together(commands: list[list[str]], timeout: float = TIMEOUT_S) -> list[str]:
    """Runs the commands at the same time; returns their outputs (stdout + stderr).

    As soon as one fails, or when the time runs out, the others are killed and the
    test fails with every output shown."""
    logs = [tempfile.TemporaryFile("w+") for _ in commands]
    procs = [
        subprocess.Popen(
            cmd, env=_env(), stdout=log, stderr=subprocess.STDOUT, text=True
        )
        for cmd, log in zip(commands, logs)
    ]
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            codes = [proc.poll() for proc in procs]
            if all(code is not None for code in codes) or any(codes):
                break
            time.sleep(0.05)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    outputs = []
    for log in logs:
        log.seek(0)
        outputs.append(log.read())
        log.close()
    codes = [proc.returncode for proc in procs]
    report = "\n".join(
        f"--- process {i} (exit code {code}):\n{out[-3000:]}"
        for i, (code, out) in enumerate(zip(codes, outputs))
    )
    if any(code != 0 for code in codes):
        raise AssertionError(report)
    return outputs


def _worker(*args: str) -> list[str]:
    return [sys.executable, str(WORKER), *args]


def _losses(output: str) -> dict[tuple[str, int], float]:
    found = re.findall(r"^loss (\w+) (\d+) (\S+)$", output, re.M)
    return {(name, int(step)): float(value) for name, step, value in found}


def _params(output: str) -> dict[str, tuple[float, int]]:
    found = re.findall(r"^params (\w+) (\S+) (\d+)$", output, re.M)
    return {name: (float(total), int(shard)) for name, total, shard in found}


@pytest.mark.multidevice
def test_two_processes_train_like_one():
    port = str(_free_port())
    pair = [
        _worker(
            "--local-devices",
            "4",
            "--num-processes",
            "2",
            "--process-id",
            str(i),
            "--port",
            port,
        )  # fmt: skip
        for i in range(2)
    ]
    # The single-process reference runs beside the pair.
    single, *pair = _run_together([_worker("--local-devices", "8"), *pair])
    assert "process 0 of 1: 8 local devices, 8 in all" in single, single
    expected = _losses(single)
    assert {name for name, _ in expected} == {"data_parallel", "fsdp"}
    assert len(expected) == 6, single
    for i, out in enumerate(pair):
        assert f"process {i} of 2: 4 local devices, 8 in all" in out, out
        got = _losses(out)
        assert got.keys() == expected.keys(), out
        for key, value in expected.items():
            np.testing.assert_allclose(got[key], value, rtol=1e-5, err_msg=str(key))
        params, params_single = _params(out), _params(single)
        for name, (total, shard) in params_single.items():
            np.testing.assert_allclose(params[name][0], total, rtol=1e-5)
            assert params[name][1] == shard, (name, params, params_single)
    # Training moved the loss, and FSDP keeps less per device than data parallel.
    assert expected["data_parallel", 2] < expected["data_parallel", 0]
    per_device = _params(single)
    assert per_device["fsdp"][1] < per_device["data_parallel"][1] / 2, per_device


def test_run_together_kills_the_others_and_reports():
    """One process fails at once while the other would sleep for ten minutes: the
    sleeper is killed (exit code -9) as soon as the failure is seen, and the report
    shows the output of both."""
    sleep = "print('waiting', flush=True); import time; time.sleep(600)"
    hang = [sys.executable, "-c", sleep]
    fail = [sys.executable, "-c", "raise SystemExit('worker 1 failed')"]
    report = r"(?s)process 0 \(exit code -9\):\nwaiting.*process 1 \(exit code 1\)"
    with pytest.raises(AssertionError, match=report + r":\nworker 1 failed"):
        _run_together([hang, fail], timeout=TIMEOUT_S)
    with pytest.raises(AssertionError, match=r"exit code -9"):
        _run_together([hang], timeout=0.5)
