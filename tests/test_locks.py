"""The lock files agree with pyproject, with each other, with what is installed, and are used.

A fresh clone must build the same way next month as today: every package comes from a lock
(requirements/), hash-checked. These checks fail when pyproject or a `*.in` file changed without
`make lock`, when two locks disagree on a version, when this venv holds something else than the
dev lock says, or when an install command somewhere bypasses the locks.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent


def _load_locks_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("locks", ROOT / "requirements" / "locks.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["locks"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


locks = _load_locks_module()
LOCKS = {lock.name: lock for lock in locks.LOCKS}


def _applies(marker: str) -> bool:
    return not marker or Marker(marker).evaluate()


def _versions_here(name: str) -> dict[str, str]:
    """Package -> version, for the lock's entries that apply to this interpreter."""
    return {pin.name: pin.version for pin in locks.pins(LOCKS[name]) if _applies(pin.marker)}


def _project() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"runtime": project["dependencies"], "dev": project["optional-dependencies"]["dev"]}


def test_every_lock_was_written_from_todays_inputs() -> None:
    assert locks.stale_locks() == [], "inputs changed since the locks were written: make lock"


def test_a_changed_input_makes_its_lock_stale(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The digest check can fail: a copy of a lock is fresh until its input changes."""
    lock = LOCKS["checkov"]
    (tmp_path / "checkov.lock").write_text(lock.path.read_text())
    (tmp_path / "checkov.in").write_text((locks.HERE / "checkov.in").read_text())
    monkeypatch.setattr(locks, "HERE", tmp_path)
    assert locks.recorded_digest(lock) == lock.digest()
    (tmp_path / "checkov.in").write_text("checkov>=3.3.30,<5\n")
    assert locks.recorded_digest(lock) != lock.digest()


@pytest.mark.parametrize("group", ["runtime", "dev"])
def test_pyproject_requirements_are_satisfied_by_the_lock(group: str) -> None:
    pinned = _versions_here("dev" if group == "dev" else "runtime")
    for line in _project()[group]:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{line}: not in requirements/{group}.lock"
        assert requirement.specifier.contains(pinned[name], prereleases=True), (
            f"{line}: the lock pins {pinned[name]}"
        )


@pytest.mark.parametrize("name", ["runtime", "protoc", "lambda-ric"])
def test_locks_constrained_by_dev_share_its_versions(name: str) -> None:
    dev = _versions_here("dev")
    for package, version in _versions_here(name).items():
        if package in dev:
            assert dev[package] == version, f"{name}.lock {package}=={version}, dev {dev[package]}"


def test_every_entry_is_pinned_exactly_with_hashes() -> None:
    for lock in locks.LOCKS:
        entries = locks.pins(lock)
        assert entries, lock.name
        for pin in entries:
            assert re.fullmatch(r"[A-Za-z0-9.+!]+", pin.version), (lock.name, pin)
            assert pin.hashes, pin
            assert all(h.startswith("sha256:") for h in pin.hashes), pin


def test_this_venv_holds_exactly_the_dev_lock() -> None:
    """What `make install` installed is what the dev lock names, version for version."""
    wrong = {}
    for package, version in _versions_here("dev").items():
        try:
            installed = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            installed = "missing"
        if installed != version:
            wrong[package] = (version, installed)
    assert wrong == {}, "(locked, installed): run make install"


PIP_INSTALL = re.compile(r"\bpip install [^\n]*(?:\\\n[^\n]*)*")
LOCKED_INSTALL = re.compile(r"--require-hashes|PIP_LOCKED|--no-deps")


@pytest.mark.parametrize("path", ["Makefile", "Dockerfile", ".ci/run"])
def test_installs_go_through_the_locks(path: str) -> None:
    """Every pip install is hash-checked from a lock, or installs the project alone (no deps)."""
    text = (ROOT / path).read_text()
    for command in PIP_INSTALL.findall(text):
        assert LOCKED_INSTALL.search(command), f"{path}: {command!r} bypasses the locks"
