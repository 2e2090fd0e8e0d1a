"""Project-wide checks: the pure core stays pure, ruff and mypy --strict are clean."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = ("ingest", "shards", "bus", "tools")
PURE = (
    "ingest/events.py",
    "ingest/errors.py",
    "ingest/settings.py",
    "ingest/book",
    "ingest/exchanges",
    "bus/wire.py",
    "shards/plan.py",
    "tools/sim/market.py",
    "tools/sim/faults.py",
    "tools/top/fmt.py",
    "tools/top/render.py",
)
FORBIDDEN = {"asyncio", "socket", "zmq", "redis", "aiohttp", "uvloop", "multiprocess", "subprocess", "time"}


def _module_path(name: str) -> Path | None:
    base = ROOT / Path(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _pure_files() -> list[Path]:
    out: list[Path] = []
    for entry in PURE:
        p = ROOT / entry
        out.extend(sorted(p.rglob("*.py")) if p.is_dir() else [p])
    return [p for p in out if p.exists()]


@pytest.mark.parametrize("path", _pure_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_pure_core_imports_no_io(path: Path) -> None:
    """Follow project imports transitively; none may reach an I/O library."""
    seen: set[Path] = set()
    todo = [path]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for name in _imports(current):
            top = name.split(".")[0]
            assert top not in FORBIDDEN, f"{current.relative_to(ROOT)} imports {name} (reached from {path.name})"
            if top in PACKAGES and (mod := _module_path(name)) is not None:
                todo.append(mod)


def _tool(name: str) -> str:
    exe = Path(sys.executable).parent / name
    found = str(exe) if exe.exists() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


def test_ruff_clean() -> None:
    paths = [*PACKAGES, "examples", "tests"]
    r = subprocess.run([_tool("ruff"), "check", *paths], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_mypy_strict_clean() -> None:
    r = subprocess.run([_tool("mypy"), "--strict", *PACKAGES, "examples"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
