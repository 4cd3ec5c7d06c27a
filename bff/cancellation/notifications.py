"""The notification (varsel) sent when a provider decides a cancellation: in Norwegian
(bokmål), naming the appointment, its date and time, and the outcome, so the citizen need
not log in to see it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bff.cancellation.store import CancellationRecord
from bff.domain.models import CancellationStatus, MunicipalService
from bff.domain.timez import OSLO

WEEKDAYS = ("mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag")
MONTHS = ("januar", "februar", "mars", "april", "mai", "juni", "juli", "august", "september", "oktober",
          "november", "desember")
SERVICE_NAMES = {MunicipalService.HOME_NURSING.value: "hjemmesykepleie",
                 MunicipalService.PRACTICAL_ASSISTANCE.value: "praktisk bistand"}
KIND = "cancellation.decided"


@dataclass(frozen=True, slots=True)
class Notification:
    """One notification, as the notification service takes it."""

    recipient: str
    outcome: str
    title: str
    text: str

    def payload(self) -> dict[str, str]:
        return {"recipient": self.recipient, "kind": KIND, "outcome": self.outcome, "title": self.title,
                "text": self.text}


def norwegian_date_time(value: datetime) -> str:
    """E.g. "mandag 30. november 2026 kl. 10.00" (Europe/Oslo)."""
    local = value.astimezone(OSLO)
    return (f"{WEEKDAYS[local.weekday()]} {local.day}. {MONTHS[local.month - 1]} {local.year} "
            f"kl. {local.hour:02d}.{local.minute:02d}")


def _what(record: CancellationRecord) -> str:
    if record.service and record.service in SERVICE_NAMES:
        return SERVICE_NAMES[record.service]
    if record.title:
        return f"timen «{record.title}»"
    return "timen"


def decision_notification(record: CancellationRecord) -> Notification:
    """The notification for a decided request (ACCEPTED or REJECTED)."""
    accepted = record.status is CancellationStatus.ACCEPTED
    who = record.organization or "Tjenesten"
    when = f" {norwegian_date_time(datetime.fromisoformat(record.start))}" if record.start else ""
    verb = "godtatt" if accepted else "avslått"
    text = f"{who} har {verb} avbestillingen av {_what(record)}{when}."
    text += " Avtalen er avlyst." if accepted else " Avtalen gjelder fortsatt."
    if record.provider_message:
        text += f" Melding: «{record.provider_message}»"
    return Notification(recipient=record.actor_pid, outcome="accepted" if accepted else "rejected",
                        title=f"Avbestillingen er {verb}", text=text)
