"""GraphiQL, served by the BFF itself (sandbox profile): its assets come from
`bff/static/graphiql`, never a CDN; the web client's operations are its example tabs;
with the development issuer, a fresh token for a sandbox person is filled in."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from starlette.responses import HTMLResponse

IDE_CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
           "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
PAGE = """<!doctype html>
<html lang="nb">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Timeavtaler BFF · GraphiQL</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/graphiql/graphiql.min.css">
<style>html, body, #graphiql {{ height: 100%; margin: 0; }}</style>
</head>
<body>
<div id="graphiql">Laster GraphiQL …</div>
<script id="bff-config" type="application/json">{config}</script>
<script src="/graphiql/react.production.min.js"></script>
<script src="/graphiql/react-dom.production.min.js"></script>
<script src="/graphiql/graphiql.min.js"></script>
<script src="/graphiql/ide.js"></script>
</body>
</html>
"""
FIRST_EXAMPLES = ("Appointments", "CancellationUpdates", "RequestCancellation", "Me", "Sources", "Appointment")


def safe_json(value: object) -> str:
    """JSON that cannot end the surrounding <script> element."""
    return json.dumps(value, ensure_ascii=False).replace("<", "\\u003c").replace(">", "\\u003e").replace(
        "&", "\\u0026")


def examples(folder: Path) -> list[dict[str, str]]:
    """The web client's operations, list first."""
    found = {path.stem: path.read_text("utf-8") for path in folder.glob("*.graphql")}
    order = [name for name in FIRST_EXAMPLES if name in found] + sorted(set(found) - set(FIRST_EXAMPLES))
    return [{"name": name, "query": found[name]} for name in order]


class IdePage:
    """Renders the GraphiQL page; `token()` gives a dev token to fill in, or None."""

    def __init__(self, operations: Path, token: Callable[[], str | None]) -> None:
        self._examples = examples(operations)
        self._token = token

    def render(self) -> HTMLResponse:
        token = self._token()
        auth = {"Authorization": f"Bearer {token}"} if token else {}
        config = {"endpoint": "/graphql", "examples": self._examples,
                  "headers": json.dumps(auth, indent=2) if auth else "", "connectionParams": auth}
        return HTMLResponse(PAGE.format(config=safe_json(config)),
                            headers={"Content-Security-Policy": IDE_CSP, "Cache-Control": "no-store"})
