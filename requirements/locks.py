"""The lock files: what each is resolved from, how `make lock` rewrites them, how they are checked.

Every Python package this project installs, anywhere (the dev venv, the image, the tool venvs),
comes from one of these files, pinned to an exact version with the hashes of its files, and is
installed with `pip install --require-hashes`. uv resolves them (`uv pip compile --universal`):
one resolution that holds on every platform and Python from 3.11, in seconds, with hashes.

Each lock carries the digest of its inputs in its header, so that a change to pyproject's
dependencies or to a `*.in` file without `make lock` is caught (`python requirements/locks.py
check`, run by the tests). Only the standard library here: it runs before any venv exists.

    python requirements/locks.py write [--upgrade]   # make lock (always --upgrade)
    python requirements/locks.py check               # inputs and locks agree
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON_VERSION = "3.11"  # the oldest Python the project supports: the lock holds from there up
DIGEST_PREFIX = "# inputs-sha256: "


@dataclass(frozen=True, slots=True)
class Lock:
    """One lock file and what it is resolved from."""

    name: str
    source: str  # "pyproject" or a `*.in` file in this folder
    extras: tuple[str, ...] = ()
    constraint: str | None = None  # a lock whose versions this one must share

    @property
    def path(self) -> Path:
        return HERE / f"{self.name}.lock"

    def inputs(self) -> list[str]:
        """The requirement lines this lock is resolved from, in a stable order."""
        if self.source != "pyproject":
            lines = (HERE / self.source).read_text().splitlines()
            return sorted(line.strip() for line in lines if line.strip() and line[0] != "#")
        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        wanted = list(project["dependencies"])
        for extra in self.extras:
            wanted += project["optional-dependencies"][extra]
        return [*sorted(wanted), f"python {project['requires-python']}"]

    def digest(self) -> str:
        return hashlib.sha256("\n".join(self.inputs()).encode()).hexdigest()


# Order matters: a lock is written after the one it is constrained by.
LOCKS = (
    # The dev venv (.venv): runtime and development tools, uv included (it writes these files).
    Lock("dev", "pyproject", extras=("dev",)),
    # The image's service venv: the runtime dependencies, at the dev venv's versions.
    Lock("runtime", "pyproject", constraint="dev"),
    # pip, setuptools and wheel themselves, for every venv and the image's build stage.
    Lock("bootstrap", "bootstrap.in"),
    # The image's protobuf generator venv, at the dev venv's versions.
    Lock("protoc", "protoc.in", constraint="dev"),
    # The Lambda runtime interface client of the image's lambda target.
    Lock("lambda-ric", "lambda-ric.in", constraint="dev"),
    # checkov, in a venv of its own: it pins boto3/botocore versions that clash with aiobotocore's.
    Lock("checkov", "checkov.in"),
)


def _compile_command(lock: Lock, uv: str, upgrade: bool) -> list[str]:
    source = ROOT / "pyproject.toml" if lock.source == "pyproject" else HERE / lock.source
    command = [uv, "pip", "compile", str(source), "--output-file", str(lock.path), "--quiet"]
    command += ["--universal", "--python-version", PYTHON_VERSION, "--generate-hashes"]
    for extra in lock.extras:
        command += ["--extra", extra]
    if lock.constraint is not None:
        command += ["--constraint", str(HERE / f"{lock.constraint}.lock")]
    if upgrade:
        command.append("--upgrade")
    return command


def write(uv: str, upgrade: bool) -> None:
    """Resolve every lock again (newest allowed versions with `upgrade`) and stamp its inputs."""
    environment = {**os.environ, "UV_CUSTOM_COMPILE_COMMAND": "make lock"}
    for lock in LOCKS:
        subprocess.run(_compile_command(lock, uv, upgrade), check=True, env=environment)
        body = lock.path.read_text()
        lock.path.write_text(f"{DIGEST_PREFIX}{lock.digest()}\n{body}")
        print(f"wrote {lock.path.relative_to(ROOT)}")


@dataclass(frozen=True, slots=True)
class Pin:
    """One entry of a lock: `name==version ; marker` and the hashes of its files."""

    name: str
    version: str
    marker: str
    hashes: tuple[str, ...]


def pins(lock: Lock) -> list[Pin]:
    """The entries of a lock file, as uv writes them."""
    found: list[Pin] = []
    for entry in lock.path.read_text().replace("\\\n", " ").splitlines():
        if not entry or entry.startswith(("#", " ")):
            continue
        words = entry.split()
        requirement, _, marker = " ".join(w for w in words if "--hash" not in w).partition(";")
        name, _, version = requirement.strip().partition("==")
        hashes = tuple(w.removeprefix("--hash=") for w in words if w.startswith("--hash="))
        found.append(Pin(_normalise(name), version, marker.strip(), hashes))
    return found


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def recorded_digest(lock: Lock) -> str | None:
    first = lock.path.read_text().split("\n", 1)[0] if lock.path.exists() else ""
    return first.removeprefix(DIGEST_PREFIX) if first.startswith(DIGEST_PREFIX) else None


def stale_locks() -> list[str]:
    """The locks whose inputs changed since they were written (or that are missing)."""
    return [lock.name for lock in LOCKS if recorded_digest(lock) != lock.digest()]


def main(arguments: list[str]) -> int:
    if arguments[:1] == ["write"]:
        uv = os.environ.get("UV", "uv")
        write(uv, upgrade="--upgrade" in arguments)
        return 0
    if arguments == ["check"]:
        stale = stale_locks()
        for name in stale:
            print(f"requirements/{name}.lock is stale: its inputs changed; run make lock")
        return 1 if stale else 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
