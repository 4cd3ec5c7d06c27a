"""The typed per-request context every resolver receives."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import strawberry

from bff.domain.timez import now, today
from bff.readpath.gateway import SourceOutcome, SourceState
from bff.readpath.response_cache import Audit
from bff.services import Services
from bff.store.audit import SELF, Actor
from bff.web.auth import Viewer
from resolvers.loaders import AppointmentsBySourceLoader, CancellationByAppointmentLoader, PersonByPidLoader

ANONYMOUS = Viewer(pid="", acr="")


@dataclass
class Context:
    """Who is asking, the shared services, this request's loaders and its time budget.

    Over a WebSocket one context lives as long as the connection: the viewer is set when
    `connection_init` carries a valid token, and `renew()` gives each subscription event
    fresh loaders and a fresh deadline."""

    services: Services
    viewer: Viewer
    now: datetime = field(init=False)
    deadline: float = field(init=False)
    persons: PersonByPidLoader = field(init=False)
    appointments: AppointmentsBySourceLoader = field(init=False)
    cancellations: CancellationByAppointmentLoader = field(init=False)
    connection_params: dict[str, Any] | None = None
    audited: list[Audit] = field(default_factory=list, repr=False)
    channel: str = "web"
    """How the viewer reaches their data in this request: web, calendar or subscription."""
    degraded: bool = False
    """Set when a source was not OK: such an answer is not reused."""

    def saw(self, outcome: SourceOutcome) -> None:
        """The answer used a source's `outcome`: it is kept only if every one was OK."""
        if outcome.state is not SourceState.OK:
            self.degraded = True

    def __post_init__(self) -> None:
        self.renew()

    @property
    def authenticated(self) -> bool:
        return bool(self.viewer.pid)

    @property
    def today(self) -> date:
        return today(self.now)

    async def audit(self, subject_pid: str, action: str, outcome: str, what: str = "",
                    channel: str | None = None) -> None:
        """Write an audit entry for the viewer's access, and remember it (a reused answer
        writes the same entries again)."""
        entry = (self.viewer.pid, subject_pid, action, outcome, what, await self.actor(subject_pid, channel))
        self.audited.append(entry)
        await self.services.audit.record(*entry)

    async def actor(self, subject_pid: str, channel: str | None = None) -> Actor:
        """Who the viewer is to `subject_pid`, named as the directory names them (the
        viewer's record is loaded already by whatever asked)."""
        viewer = (await self.persons.load(self.viewer.pid)).record
        name = viewer.name if viewer else ""
        if subject_pid == self.viewer.pid or viewer is None:
            return Actor(SELF.relation, name, channel or self.channel)
        basis = next((r.basis.value for r in viewer.may_act_for if r.pid == subject_pid), SELF.relation)
        return Actor(basis, name, channel or self.channel)

    def release(self) -> None:
        """Forget what this request's loaders hold, once its answer is made. graphql-core's
        executor is part of a reference cycle that holds the context, so without this a
        list's rows, provider answers and all stay alive until the garbage collector runs
        (bench/results/NOTES.md)."""
        self.persons.abandon()
        self.appointments.ahead.release_unused()
        for loader in (self.persons, self.appointments, self.cancellations):
            loader.clear_all()

    def executing(self) -> None:
        """The request passed validation and is executed (`LeanExecutionContext`)."""
        self.persons.admit()

    def renew(self) -> None:
        """A new time budget and empty loaders (what a new HTTP request would get)."""
        services = self.services
        self.now = now()
        self.deadline = asyncio.get_running_loop().time() + services.settings.request_deadline
        self.persons = PersonByPidLoader(services.people, self.deadline)
        self.cancellations = CancellationByAppointmentLoader(services.cancellations.store)
        self.appointments = AppointmentsBySourceLoader(services.gateway, services.catalogue, today(self.now),
                                                       self.deadline, self.persons, self.cancellations)


Info = strawberry.Info[Context, None]
