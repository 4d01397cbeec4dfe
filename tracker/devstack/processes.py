"""Child processes for the local stack and the tests: start, wait until they listen, stop."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[2]
KINESALITE_JS = REPO_ROOT / "infra" / "local" / "kinesalite.js"
LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, timeout: float, process: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process {process.args!r} exited with {process.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {LOOPBACK}:{port} after {timeout}s")


class ManagedProcess:
    """A child process that listens on a port; stopped with SIGTERM, killed if it lingers."""

    start_timeout = 30.0  # seconds for the port to open

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        port: int,
        env: Mapping[str, str] | None = None,
        output: IO[bytes] | int | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.port = port
        self.env = dict(env) if env is not None else None
        self.output = output if output is not None else subprocess.DEVNULL
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ManagedProcess:
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stdout=self.output,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        try:
            wait_for_port(self.port, self.start_timeout, self.process)
        except BaseException:
            self.kill()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        """SIGKILL, as a crash would: no chance to clean up."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def redis_server(port: int) -> ManagedProcess:
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError(
            "redis-server is not on PATH (Debian/Ubuntu: apt-get install "
            "redis-server; macOS: brew install redis)"
        )
    argv = [
        binary,
        "--port",
        str(port),
        "--bind",
        LOOPBACK,
        "--save",
        "",
        "--appendonly",
        "no",
        "--protected-mode",
        "yes",
        "--loglevel",
        "warning",
    ]
    return ManagedProcess("redis", argv, port)


def kinesalite(port: int) -> ManagedProcess:
    node = shutil.which("node")
    if node is None:
        raise FileNotFoundError("node is not on PATH: kinesalite (the Kinesis emulator) needs it")
    if not (KINESALITE_JS.parent / "node_modules" / "kinesalite").is_dir():
        raise FileNotFoundError("kinesalite is not installed: run `make install`")
    return ManagedProcess("kinesalite", [node, str(KINESALITE_JS), str(port)], port)


def moto_server(port: int) -> ManagedProcess:
    binary = Path(sys.executable).with_name("moto_server")
    argv = [str(binary), "-H", LOOPBACK, "-p", str(port)]
    env = {**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"}
    return ManagedProcess("moto", argv, port, env=env)


def emulator_env(redis_port: int, kinesis_port: int, dynamodb_port: int) -> dict[str, str]:
    """The settings that point every client at the local stack."""
    return {
        "REDIS_URL": f"redis://{LOOPBACK}:{redis_port}/0",
        "AWS_ENDPOINT_URL_KINESIS": f"http://{LOOPBACK}:{kinesis_port}",
        "AWS_ENDPOINT_URL_DYNAMODB": f"http://{LOOPBACK}:{dynamodb_port}",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",  # the emulators accept any credentials
    }
