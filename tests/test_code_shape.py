"""The house rules that ruff cannot state: checked on the source, so that they hold as it grows.

- A function takes at most MAX_PARAMETERS parameters, `self` and `cls` counted: past that the
  data wants a name (a small typed record), not a longer list.
- A function fits on a screen: at most MAX_FUNCTION_LINES lines, its signature included.
- No import circle inside a package, imports under TYPE_CHECKING and inside functions counted:
  a circle means the shared names want a home below both.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tracker", "consumers", "reports", "bench")
GENERATED = ("schema",)  # protobuf's generated code
MAX_PARAMETERS = 6
MAX_FUNCTION_LINES = 50

Function = ast.FunctionDef | ast.AsyncFunctionDef


def _sources(package: str) -> Iterator[Path]:
    for path in sorted((ROOT / package).rglob("*.py")):
        if not GENERATED or not set(GENERATED) & set(path.relative_to(ROOT).parts):
            yield path


def _functions(package: str) -> Iterator[tuple[str, Function]]:
    for path in _sources(package):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", node


def parameter_count(function: Function) -> int:
    arguments = function.args
    named = arguments.posonlyargs + arguments.args + arguments.kwonlyargs
    return len(named) + (arguments.vararg is not None) + (arguments.kwarg is not None)


def function_lines(function: Function) -> int:
    first = min([function.lineno, *(d.lineno for d in function.decorator_list)])
    return (function.end_lineno or function.lineno) - first + 1


def _over(package: str, measure: Callable[[Function], int], limit: int) -> list[str]:
    """Every function of `package` whose `measure` passes `limit`, with where and how much."""
    return [f"{where}: {measure(f)}" for where, f in _functions(package) if measure(f) > limit]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_function_takes_more_than_six_parameters(package: str) -> None:
    assert _over(package, parameter_count, MAX_PARAMETERS) == []


@pytest.mark.parametrize("package", PACKAGES)
def test_every_function_fits_on_a_screen(package: str) -> None:
    assert _over(package, function_lines, MAX_FUNCTION_LINES) == []


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that `path` imports, wherever in the file the import stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found & known


def import_graph(package: str) -> dict[str, set[str]]:
    paths = {_module_name(path): path for path in _sources(package)}
    known = set(paths)
    return {name: _imported_modules(path, known) - {name} for name, path in paths.items()}


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of the graph (its modules in order), or None."""
    state: dict[str, str] = {}  # "open" while on the path, "done" once fully explored

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = "open"
        for target in sorted(graph[module]):
            if state.get(target) == "open":
                return [*path[path.index(target) :], target]
            if target not in state and (circle := visit(target, [*path, target])):
                return circle
        state[module] = "done"
        return None

    for start in sorted(graph):
        if start not in state and (circle := visit(start, [start])):
            return circle
    return None


def test_find_circle_finds_one_and_only_one() -> None:
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_circle(package: str) -> None:
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package}/ does not exist yet")
    assert find_circle(import_graph(package)) is None
