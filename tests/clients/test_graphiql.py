"""GraphiQL without the internet: served by the BFF, opened in headless Chromium, the
example query run, appointments shown; a screenshot is kept in test-output/."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.clients.node import NODE_DIR, require_node
from tests.conftest import Bff

OUTPUT = Path(__file__).resolve().parents[2] / "test-output"


def require_chromium() -> str:
    path = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(path).exists():
        message = "needs Debian's chromium (`.ci/run` installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


async def test_graphiql_runs_the_example_query_with_no_request_leaving_the_bff(bff: Bff) -> None:
    node = require_node()
    chromium = require_chromium()
    OUTPUT.mkdir(exist_ok=True)
    shot = OUTPUT / "graphiql.png"
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "graphiql.mjs"), f"{bff.url}/graphql", str(shot), cwd=NODE_DIR,
        env={**os.environ, "CHROMIUM": chromium}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    seen = json.loads(out)
    assert seen["elsewhere"] == [], "the page loaded something from another host"
    assert seen["errors"] == []
    assert seen["tabs"][:3] == ["Appointments", "CancellationUpdates", "RequestCancellation"]
    # The result pane, as a person sees it (its first screenful), and what GraphiQL received.
    shown = seen["result"].replace("\xa0", " ")
    assert '"totalCount": 10' in shown and '"title": "Hjemmesykepleie"' in shown
    listed = [a for a in seen["answers"] if "appointments" in (a.get("data") or {})]
    titles = [n["title"] for n in listed[-1]["data"]["appointments"]["nodes"]]
    assert "Praktisk bistand" in titles and "Kontroll etter grå stær" in titles
    assert shot.stat().st_size > 10_000


async def test_the_page_is_locked_down(bff: Bff) -> None:
    page = await bff.http.get(f"{bff.url}/graphql", headers={"Accept": "text/html"})
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-eval" not in csp and "frame-ancestors 'none'" in csp
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "the page names another host"
    asset = await bff.http.get(f"{bff.url}/graphiql/graphiql.min.js")
    assert asset.status_code == 200 and len(asset.content) > 500_000
