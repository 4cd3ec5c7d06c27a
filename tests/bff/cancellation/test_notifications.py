"""The varsel text: Norwegian, naming the appointment, date, time and outcome."""

from __future__ import annotations

import pytest

from bff.cancellation.notifications import decision_notification, norwegian_date_time
from bff.cancellation.store import CancellationRecord
from bff.domain.models import CancellationStatus

ACCEPTED, REJECTED = CancellationStatus.ACCEPTED, CancellationStatus.REJECTED

pytestmark = pytest.mark.unit


def record(status: str, **kw: str | None) -> CancellationRecord:
    values = {"service": "PRACTICAL_ASSISTANCE", "title": "Praktisk bistand", "organization": "Bergen kommune",
              "start": "2026-12-07T10:00:00+01:00", **kw}
    return CancellationRecord("r", "actor", "subject", "bergen-kommune", "v", status,
                              "2026-11-27T10:00:00+01:00", **values)  # type: ignore[arg-type]


def test_date_and_time_in_norwegian() -> None:
    from datetime import datetime

    assert norwegian_date_time(datetime.fromisoformat("2026-12-07T10:00:00+01:00")) == \
        "mandag 7. desember 2026 kl. 10.00"
    assert norwegian_date_time(datetime.fromisoformat("2026-06-01T06:30:00Z")) == "mandag 1. juni 2026 kl. 08.30"


def test_accepted() -> None:
    note = decision_notification(record(ACCEPTED, provider_message=None))
    assert note.outcome == "accepted" and note.title == "Avbestillingen er godtatt"
    assert note.text == ("Bergen kommune har godtatt avbestillingen av praktisk bistand mandag 7. desember 2026 "
                         "kl. 10.00. Avtalen er avlyst.")
    assert note.payload()["kind"] == "cancellation.decided"


def test_rejected_with_message_and_a_hospital_title() -> None:
    note = decision_notification(record(REJECTED, service=None, title="Kontroll", organization="Haukeland",
                                        provider_message="Ring oss"))
    assert note.outcome == "rejected"
    assert note.text == ("Haukeland har avslått avbestillingen av timen «Kontroll» mandag 7. desember 2026 "
                         "kl. 10.00. Avtalen gjelder fortsatt. Melding: «Ring oss»")
