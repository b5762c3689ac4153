"""Another bench script as a module: the bench scripts are files run by path, not a package, and some use each
other's builders and probes (console.py's store builder, fleet and percentiles; canary.py's store builder)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

HERE = Path(__file__).resolve().parent


def sibling(name: str) -> ModuleType:
    """bench/<name>.py loaded (and run) as the module ``bench_<name>``."""
    spec = importlib.util.spec_from_file_location(f"bench_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
