"""Running the Node client scripts in tests/node (installed by `npm ci --prefix tests/node`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parents[1] / "node"


def require_node() -> str:
    """The node binary; without it (or the installed packages) the test is skipped locally
    and fails on CI, where `.ci/run` installs both."""
    node = shutil.which("node")
    missing = node is None or not (NODE_DIR / "node_modules" / "graphql-http").is_dir()
    if missing:
        message = "needs Node.js and `npm ci --prefix tests/node` (`.ci/run` does both)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    assert node is not None
    return node
