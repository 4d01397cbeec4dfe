"""The Docker engine and a compose project, as `make compose-test` drives them.

Every call is bounded: a command that does not finish within its timeout is a failure that
names the command, never a hang. Containers are found by the label compose puts on them
(`com.docker.compose.project`), which v2's `docker compose` and v1's `docker-compose` both set.
"""

# ruff: noqa: S603 (this module's job: running docker with arguments it builds itself)

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

COMPOSE_FILE = "docker-compose.yml"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"


class CheckError(Exception):
    """A step of the check went wrong; the message says which and why."""


def say(message: str) -> None:
    sys.stdout.write(f"compose-test: {message}\n")
    sys.stdout.flush()


def run(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run a command to its end within `timeout` seconds; its output is captured, not shown."""
    try:
        return subprocess.run(
            list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckError(f"{' '.join(argv)}: no answer within {timeout:.0f} s") from None
    except FileNotFoundError:
        raise CheckError(f"{argv[0]}: not found on PATH") from None


def run_ok(
    argv: Sequence[str], timeout: float, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Like run, and a non-zero exit is a failure that quotes the end of the command's output."""
    done = run(argv, timeout, env)
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).strip().splitlines()[-20:]
        raise CheckError(
            f"{' '.join(argv)} exited {done.returncode}:\n" + "\n".join(f"  {t}" for t in tail)
        )
    return done


def compose_command() -> list[str]:
    """v2's `docker compose` when the docker CLI has it, else v1's `docker-compose`."""
    if run(["docker", "compose", "version"], timeout=30).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise CheckError("neither `docker compose` nor `docker-compose` is installed")


@dataclass(frozen=True)
class ContainerState:
    service: str
    name: str
    status: str  # created, running, restarting, exited, ...
    health: str | None  # starting, healthy, unhealthy; None without a health check
    exit_code: int
    finished_at: float  # epoch seconds of its last exit; 0 before the first


@dataclass(frozen=True)
class Project:
    """One compose project: its name, the compose command and the variables the file reads."""

    name: str
    command: list[str]
    variables: dict[str, str] = field(default_factory=dict)

    def compose(
        self, *args: str, timeout: float, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a compose command on this project; with `check`, a non-zero exit is a failure.

        The file is named, so that neither COMPOSE_FILE nor a developer's override file applies.
        """
        argv = [*self.command, "-f", COMPOSE_FILE, "-p", self.name, *args]
        env = {**os.environ, **self.variables}
        return run_ok(argv, timeout, env) if check else run(argv, timeout, env)

    def containers(self) -> list[ContainerState]:
        ids = run_ok(
            ["docker", "ps", "-a", "-q", "--filter", f"label={PROJECT_LABEL}={self.name}"],
            timeout=30,
        ).stdout.split()
        if not ids:
            return []
        inspected = json.loads(run_ok(["docker", "inspect", *ids], timeout=30).stdout)
        return [_state(container) for container in inspected]


def _state(container: Mapping[str, Any]) -> ContainerState:
    """What `docker inspect` says of a container, the parts the check reads."""
    config, state = container["Config"], container["State"]
    health = state.get("Health")
    return ContainerState(
        service=str(config["Labels"].get(SERVICE_LABEL, "?")),
        name=str(container["Name"]).lstrip("/"),
        status=str(state["Status"]),
        health=str(health["Status"]) if isinstance(health, dict) else None,
        exit_code=int(state["ExitCode"]),
        finished_at=_epoch_seconds(str(state["FinishedAt"])),
    )


def _epoch_seconds(stamp: str) -> float:
    """Docker's RFC 3339 time with up to 9 decimals (trailing zeros dropped), as epoch seconds."""
    whole, _, fraction = stamp.rstrip("Z").partition(".")
    if whole.startswith("0001-"):
        return 0.0
    moment = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return moment.timestamp() + float(f"0.{fraction or 0}")


def image_present(image: str) -> bool:
    return run(["docker", "image", "inspect", image], timeout=30).returncode == 0


def wait_until(what: str, seconds: float, check: Callable[[], bool]) -> None:
    """Call `check` every second until it returns True; past `seconds` that is a failure."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise CheckError(f"{what}: not within {seconds:.0f} s")
        time.sleep(1)
