"""The build: plain setuptools (pyproject.toml says the rest), plus the modules every message passes
through compiled to C extensions by mypyc, from the same typed source (`ingest.compiled` lists them
and checks at run time that each extension is as new as its source).

``INGEST_PURE=1`` builds nothing: the project then runs as plain Python (slower, same behaviour).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from ingest.compiled import MODULES, pure  # the list lives with its run-time check


def ext_modules() -> list[Any]:
    if pure():
        return []
    from mypyc.build import mypycify

    # The runtime dependencies are not installed in an isolated build: their types are Any here,
    # which costs compiled code nothing (calls into them are generic either way).
    options = ["--config-file=", "--ignore-missing-imports", "--follow-imports=silent", "--python-version=3.11"]
    paths = [m.replace(".", "/") + ".py" for m in MODULES]
    return mypycify(options + paths, opt_level="3", debug_level="0", group_name="ingest_hot")


setup(ext_modules=ext_modules())
