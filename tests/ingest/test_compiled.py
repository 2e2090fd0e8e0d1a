"""The build's compiled modules: present where the install compiled them, and never older than their source."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

from ingest import compiled


@pytest.mark.skipif(compiled.pure(), reason="INGEST_PURE is set: the install compiled nothing")
def test_every_listed_module_runs_compiled() -> None:
    assert compiled.compiled() == list(compiled.MODULES + compiled.CYTHON)
    for name in compiled.BUILT:
        module = importlib.import_module(name)
        assert not str(module.__file__).endswith(".py"), name


def test_a_source_edited_after_its_build_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    package = tmp_path / "stalepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    ext, source = package / f"hot{suffix}", package / "hot.py"
    ext.write_bytes(b"")  # never imported: finding it is all `stale` does
    source.write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = source.stat().st_mtime
    os.utime(ext, (built, built))
    assert compiled.stale(("stalepkg.hot",)) == [] and compiled.problem(("stalepkg.hot",)) is None
    os.utime(source, (built + 60, built + 60))  # edited a minute after the build
    assert compiled.stale(("stalepkg.hot",)) == [str(source)]
    said = compiled.problem(("stalepkg.hot",))
    assert said is not None and str(source) in said and "pip install -e ." in said
    sys.modules.pop("stalepkg", None)


def test_a_pyx_edited_after_its_build_is_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    package = tmp_path / "stalecy"
    package.mkdir()
    (package / "__init__.py").write_text("")
    ext, twin, pyx = package / f"hot{suffix}", package / "hot.py", package / "hot.pyx"
    ext.write_bytes(b"")
    twin.write_text("x = 1\n")
    pyx.write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    built = twin.stat().st_mtime
    for f in (ext, twin, pyx):
        os.utime(f, (built, built))
    assert compiled.stale(("stalecy.hot",)) == []
    os.utime(pyx, (built + 60, built + 60))  # the Cython source edited after the build, its twin not
    assert compiled.stale(("stalecy.hot",)) == [str(pyx)]
    sys.modules.pop("stalecy", None)


def test_a_module_without_an_extension_is_never_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "plainmod.py").write_text("x = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert compiled.stale(("plainmod",)) == []
