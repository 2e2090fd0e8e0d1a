"""The build: plain setuptools (pyproject.toml says the rest), plus the modules every message passes
through compiled to C extensions by mypyc, from the same typed source, and the WebSocket's per-frame
listener by Cython, from its ``.pyx`` (`ingest.compiled` lists them and checks at run time that each
extension is as new as its source).

Every build first removes the extensions an earlier editable build left in the tree. ``INGEST_PURE=1``
builds nothing: the project then runs as plain Python (slower, same behaviour).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from setuptools import setup

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
from ingest.compiled import CYTHON, MODULES, pure  # the lists live with their run-time check  # noqa: E402

GROUP = "ingest_hot"  # the shared library of the compiled modules: ingest_hot__mypyc.<suffix>


def remove_extensions() -> None:
    """Delete the extensions an earlier editable build left next to their sources: Python would import
    them before the sources, including those of modules no longer compiled (a build writes the ones
    it compiles anew)."""
    for package in ("ingest", "bus", "shards", "tools"):
        for ext in (ROOT / package).rglob("*.so"):
            if ext.with_name(ext.name.split(".")[0] + ".py").exists():
                ext.unlink()
    for ext in ROOT.glob(f"{GROUP}__mypyc.*.so"):
        ext.unlink()


def ext_modules() -> list[Any]:
    remove_extensions()
    if pure():
        return []
    from mypyc.build import mypycify

    # The runtime dependencies are not installed in an isolated build: their types are Any here,
    # which costs compiled code nothing (calls into them are generic either way).
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent", "--python-version=3.11"]
    paths = [m.replace(".", "/") + ".py" for m in MODULES]
    return mypycify(options + paths, opt_level="3", debug_level="0", group_name=GROUP) + cython_modules()


def cython_modules() -> list[Any]:
    """The Cython extensions: each extends picows's C classes, found through the picows the build
    requires (the same release as the one installed: pyproject pins it for both)."""
    from Cython.Build import cythonize
    from setuptools import Extension

    exts = [Extension(m, [m.replace(".", "/") + ".pyx"]) for m in CYTHON]
    return list(cythonize(exts, build_dir="build/cython", quiet=True))  # each .pyx sets its language_level


setup(ext_modules=ext_modules())
