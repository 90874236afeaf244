"""Servers started for a while: each in its own process group with its log in a folder,
ready when an HTTP probe answers 200, and all stopped together (SIGTERM, then SIGKILL).
Used by `llmops rehearse` and by the tests' server fixtures."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from pipeline.io import UserError


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent() -> None:
    """In the child before exec: SIGKILL it when the process that started it dies, however
    that dies (Linux's PR_SET_PDEATHSIG), so a killed rehearsal leaves no server behind."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Processes:
    """Every process the rehearsal starts, each in its own process group, stopped on exit."""

    def __init__(self, out: Path):
        self.out = out
        self.procs: list[tuple[str, subprocess.Popen, Any]] = []

    def start(
        self, name: str, cmd: list[str], env: dict | None = None, cwd: Path | None = None
    ) -> subprocess.Popen:
        log = open(self.out / f"{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
        self.procs.append((name, proc, log))
        return proc

    def log_tail(self, name: str, n: int = 20) -> str:
        lines = (self.out / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def stop(self) -> None:
        for _, proc, _ in self.procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for _, proc, log in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            log.close()
        self.procs = []


def wait_http(
    url: str | urllib.request.Request,
    proc: subprocess.Popen,
    name: str,
    procs: Processes,
    timeout: float,
):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            last = procs.log_tail(name, 3).replace("\n", " / ") or "no output"
            raise UserError(
                f"{name} did not start (its log ends: {last}); the whole log is"
                f" {procs.out / (name + '.log')}"
            )
        time.sleep(0.3)
