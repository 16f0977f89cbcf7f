"""Layers point one way: edge imports neither train nor convert; train never imports convert;
fleet (a server's tools) and the rest never import each other;
no library module imports a CLI module.

Each package is imported module by module in a fresh interpreter whose import system
refuses the forbidden neighbours, so a lazy import inside a function is caught only when
it runs; the source scan below catches those too.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.fixtures import ROOT

#: package -> the packages it must never import.
#: fleet runs on a server beside the devices and speaks to them only over MQTT and HTTP.
FORBIDDEN = {"edge": ("train", "convert", "fleet"), "train": ("convert", "fleet"),
             "convert": ("fleet",), "fleet": ("edge", "train", "convert")}

#: The command-line modules; a library module importing one of these would run a CLI's
#: argument parsing and side effects on import.
CLI_MODULES = {"edge.__main__", "edge.bench.__main__", "edge.predict",
               "edge.fetch",
               "train.__main__", "train.evaluate", "train.carry", "train.through_detector",
               "train.prepare", "convert.quantize", "fleet.consume", "fleet.load"}


def _import_all(package: str, blocked: tuple[str, ...]) -> subprocess.CompletedProcess:
    code = textwrap.dedent(f"""
        import importlib.abc, importlib.util, pkgutil, sys
        web_extra = importlib.util.find_spec("flask") is not None

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {blocked!r}:
                    raise ImportError(f"{{name}} is blocked for {package}")
                return None

        sys.meta_path.insert(0, Block())
        import {package}
        for mod in pkgutil.walk_packages({package}.__path__, "{package}."):
            if mod.name.endswith("__main__"):
                continue
            if mod.name.startswith("edge.web") and not web_extra:
                continue  # the web extra's modules, not on a plain edge install
            __import__(mod.name)
    """)
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize("package", ["edge", "train", "fleet"])
def test_a_package_imports_with_its_forbidden_neighbours_blocked(package: str) -> None:
    if package == "train":
        pytest.importorskip("tensorflow")
    result = _import_all(package, FORBIDDEN[package])
    assert result.returncode == 0, result.stderr[-2000:]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_against_the_layers_even_lazily(package: str) -> None:
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        me = _module_name(path)
        for name in _imports(path):
            if name.split(".")[0] in FORBIDDEN[package]:
                wrong.append(f"{me} imports {name}")
            if name in CLI_MODULES and name != me and me not in CLI_MODULES:
                wrong.append(f"library module {me} imports the CLI module {name}")
    assert not wrong, "\n".join(wrong)


def _graph() -> dict[str, set[str]]:
    """Every module of edge, train and convert -> the modules of those it imports
    (anywhere in its source, inside functions too)."""
    modules = {}
    for package in FORBIDDEN:
        for path in (ROOT / package).rglob("*.py"):
            name = _module_name(path).removesuffix(".__init__")
            modules[name] = path
    return {name: {m for m in _imports(path) if m in modules and m != name}
            for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle in ``graph`` (as a path that returns to its start), or []."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_no_import_loop_between_any_two_modules() -> None:
    loop = _cycle(_graph())
    assert not loop, " -> ".join(loop)


#: edge's rooms and what each may import from the rest of edge (besides itself). The
#: shared contracts (events, frames, model, preprocessing, stats) sit at the top; the builder
#: (assemble) and the command lines may import anything.
ROOMS = {
    "edge.config": set(),
    "edge.capture": {"edge.config", "edge.frames", "edge.stats"},
    "edge.vision": {"edge.config", "edge.frames", "edge.events", "edge.model",
                    "edge.preprocessing", "edge.stats"},
    "edge.sinks": {"edge.config", "edge.events", "edge.stats"},
    "edge.runtime": {"edge.config", "edge.capture", "edge.frames", "edge.vision",
                     "edge.sinks", "edge.events", "edge.model", "edge.preprocessing",
                     "edge.stats"},
    "edge.web": {"edge.config", "edge.capture", "edge.frames", "edge.vision", "edge.events",
                 "edge.model", "edge.preprocessing", "edge.stats", "edge.annotate"},
}


def test_each_room_of_edge_imports_only_the_rooms_below_it() -> None:
    wrong = []
    for module, imported in _graph().items():
        room = ".".join(module.split(".")[:2])
        if room not in ROOMS:
            continue
        for name in imported:
            target = ".".join(name.split(".")[:2])
            if name.startswith("edge.") and target != room and target not in ROOMS[room]:
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_edge_keeps_at_most_a_dozen_modules_at_its_top_level() -> None:
    top = sorted(p.stem for p in (ROOT / "edge").glob("*.py"))
    assert len(top) <= 12, top


def test_no_dead_code() -> None:
    """vulture at 80 % confidence over the packages finds nothing (pyproject.toml)."""
    pytest.importorskip("vulture")
    result = subprocess.run([sys.executable, "-m", "vulture"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]


#: The product's packages (not the tests, which read best as whole scenarios).
PACKAGES = ("edge", "train", "convert", "fleet")


def _sources() -> list[Path]:
    return sorted(f for pkg in PACKAGES for f in (ROOT / pkg).rglob("*.py"))


def test_no_function_over_60_lines_and_no_file_over_400() -> None:
    long_functions, long_files = [], []
    for path in _sources():
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 400:
            long_files.append(f"{path.relative_to(ROOT)}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > 60:
                    long_functions.append(f"{path.relative_to(ROOT)}:{node.lineno} "
                                          f"{node.name}: {length} lines")
    assert not long_functions + long_files, "\n".join(long_functions + long_files)
