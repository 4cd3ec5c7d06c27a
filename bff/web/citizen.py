"""The citizen's page at `/`: the reference web client (*Timeavtaler*), served by the BFF.

Plain ES modules and a stylesheet from `bff/static/web` (no CDN, no build step); the
graphql-ws browser build is vendored beside them. Every GraphQL request it makes is a
trusted document sent by `documentId`, so it runs unchanged where only those may run; the
ids come from the manifest the BFF loaded, by operation name. In the sandbox profile it
opens as Kari Nordmann and offers the sandbox's people, with development tokens from
`/_dev/token` (never in production); in production (`BFF_WEB_CLIENT=true`) it takes the
bearer token the host page gives it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from bff.web.ide import safe_json

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
PAGE = """<!doctype html>
<html lang="nb">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Timeavtaler</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/web/style.css">
</head>
<body>
<a class="skip" href="#main">Hopp til innholdet</a>
<div id="app"><p class="loading">Laster timeavtaler …</p></div>
<script id="timeavtaler-config" type="application/json">{config}</script>
<script src="/web/graphql-ws.min.js"></script>
<script type="module" src="/web/app.js"></script>
</body>
</html>
"""
_OPERATION = re.compile(r"^\s*(?:query|mutation|subscription)\s+(\w+)", re.M)

DevTokens = Callable[[str], tuple[str, str] | None]
"""Handle → (token, name) of a sandbox person, or None for an unknown handle."""


def operation_ids(documents: Mapping[str, str]) -> dict[str, str]:
    """Operation name → `documentId` for every named operation in the manifest."""
    found = {}
    for digest, text in documents.items():
        match = _OPERATION.search(text)
        if match:
            found[match.group(1)] = f"sha256:{digest}"
    return found


class CitizenPage:
    """The page, its assets and (sandbox only) the development people and tokens."""

    def __init__(self, documents: Mapping[str, str], people: list[dict[str, str]] | None = None,
                 tokens: DevTokens | None = None, demo: str | None = None) -> None:
        self._config: dict[str, Any] = {"endpoint": "/graphql", "documents": operation_ids(documents),
                                        "sandbox": tokens is not None, "demo": demo}
        self._people = people or []
        self._tokens = tokens

    async def page(self, request: Request) -> Response:
        return HTMLResponse(PAGE.format(config=safe_json(self._config)),
                            headers={"Content-Security-Policy": PAGE_CSP, "Cache-Control": "no-store"})

    async def dev_people(self, request: Request) -> Response:
        return JSONResponse({"people": self._people}, headers={"Cache-Control": "no-store"})

    async def dev_token(self, request: Request) -> Response:
        handle = request.query_params.get("person", "")
        minted = self._tokens(handle) if self._tokens else None
        if minted is None:
            return JSONResponse({"error": f"unknown sandbox person {handle!r}"}, status_code=404)
        token, name = minted
        return JSONResponse({"token": token, "name": name}, headers={"Cache-Control": "no-store"})

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [Route("/", self.page, methods=["GET"]),
                                   Mount("/web", StaticFiles(packages=[("bff", "static/web")]))]
        if self._tokens is not None:
            routes += [Route("/_dev/people", self.dev_people, methods=["GET"]),
                       Route("/_dev/token", self.dev_token, methods=["GET"])]
        return routes
