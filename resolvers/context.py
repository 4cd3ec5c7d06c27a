"""The typed per-request context every resolver receives."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import strawberry
from starlette.requests import Request
from starlette.websockets import WebSocket

from bff.auth import Viewer
from bff.services import Services
from bff.timez import today
from resolvers.loaders import AppointmentsBySourceLoader, PersonByPidLoader


@dataclass
class Context:
    """Who is asking, the shared services, this request's loaders and its time budget."""

    request: Request | WebSocket
    services: Services
    viewer: Viewer
    now: datetime
    deadline: float
    persons: PersonByPidLoader
    appointments: AppointmentsBySourceLoader

    @property
    def today(self) -> date:
        return today(self.now)


Info = strawberry.Info[Context, None]
