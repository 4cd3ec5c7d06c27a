"""An app factory for running several uvicorn workers (or hosts) against one Redis:

    REDIS_URL=redis://… uvicorn --factory bff.asgi:app --http bff.asgi:HttpProtocol --workers 4

`HttpProtocol` is uvicorn's own httptools protocol with each response sent in one write
(`bff.runtime.writes`); without `--http` the BFF works the same, ~9 % slower
on reused answers.

Settings come from the environment as for `bff serve`. With the built-in sources file,
point `BFF_SANDBOX_URL` at providers started with `bff sandbox`."""

from __future__ import annotations

from starlette.applications import Starlette

from bff.app import create_app
from bff.runtime.tracing import configure_tracing
from bff.settings import Settings
from bff.web.logs import configure_logging
from bff.web.serving import HttpProtocol

__all__ = ["HttpProtocol", "app"]


def app() -> Starlette:
    settings = Settings()
    if not settings.redis_url:
        raise SystemExit("bff.asgi needs REDIS_URL: processes share their state through one Redis "
                         "(bff serve uses an embedded Redis for a single process)")
    configure_logging(settings.log_level)
    configure_tracing()
    return create_app(settings, {"SANDBOX_URL": settings.sandbox_url} if settings.sandbox_url else {},
                      own_process=True)
