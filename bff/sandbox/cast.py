"""The sandbox's fictional people and what each provider holds for them.

The cast covers every row of the coverage table in DESIGN.md; all dates are laid out
relative to the day the sandbox starts, so the data never goes stale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any

from bff.domain.timez import OSLO
from bff.sandbox.fhir_builder import FhirAppointment, Place, build
from bff.sandbox.pids import synthetic_pid

PILOT_GP = {"herId": "8094711", "name": "Sagene legesenter"}
OTHER_GP = {"herId": "8099999", "name": "Bergenhus legekontor"}
ASANE_GP = {"herId": "8094722", "name": "Åsane legesenter"}

HAUKELAND = Place("Haukeland universitetssjukehus", "Øyepoliklinikken", "Augeavdelinga", "4201115",
                  "Jonas Lies vei 65, 5021 Bergen")
UNN_CANCER = Place("Universitetssykehuset Nord-Norge", "Kreftpoliklinikken, UNN Tromsø", "Kreftavdelingen",
                   "4210614", "Hansine Hansens veg 67, 9019 Tromsø")
UNN_HEART = Place("Universitetssykehuset Nord-Norge", "Hjertemedisinsk poliklinikk, UNN Tromsø",
                  "Hjerteavdelingen", "4210777", "Hansine Hansens veg 67, 9019 Tromsø")
ST_OLAV_ORTO = Place("St. Olavs hospital", "Ortopedisk poliklinikk, St. Olavs hospital",
                     "Klinikk for ortopedi", "4201901", "Olav Kyrres gate 17, 7030 Trondheim")
ST_OLAV_SKIN = Place("St. Olavs hospital", "Hudpoliklinikken, St. Olavs hospital", "Hudavdelingen",
                     "4201999", "Olav Kyrres gate 17, 7030 Trondheim")
GP_OFFICE = Place("Sagene legesenter", "Sagene legesenter", "Sagene legesenter", "8094711",
                  "Sandakerveien 24, 0473 Oslo", category="17")


@dataclass(frozen=True)
class CastMember:
    """A fictional person; `handle` is how tests and docs name them."""

    handle: str
    name: str
    birth: date
    pid: str = field(repr=False)  # a repr (a log line, a test failure) never shows a pid
    municipality: str | None = None
    district: str | None = None
    gp: dict[str, str] | None = None
    confidential: bool = False
    acts_for: tuple[tuple[str, str], ...] = ()
    """(handle, basis) pairs: whom this person may act for."""
    in_directory: bool = True


@dataclass
class World:
    """Everything the sandbox providers hold."""

    people: dict[str, CastMember]
    fhir: dict[str, list[FhirAppointment]]
    visits: dict[str, dict[str, list[dict[str, Any]]]]

    def directory_record(self, pid: str) -> dict[str, Any] | None:
        member = next((m for m in self.people.values() if m.pid == pid and m.in_directory), None)
        if member is None:
            return None
        return {
            "pid": member.pid,
            "name": member.name,
            "birthDate": member.birth.isoformat(),
            "confidential": member.confidential,
            "address": {"municipality": member.municipality, "district": member.district},
            "gp": member.gp,
            "mayActFor": [
                {"pid": self.people[h].pid, "name": self.people[h].name,
                 "birthDate": self.people[h].birth.isoformat(), "basis": basis}
                for h, basis in member.acts_for
            ],
        }


def _years_ago(today: date, years: int) -> date:
    """A birth date making someone `years` old today, their birthday 40 to 221 days past.
    It moves only when a half-year begins (1 January, 1 July), not every day: the person's
    pid is made from it, and a sandbox started before midnight must still know the person a
    token made after midnight names (`bff token`, a test run that crosses midnight)."""
    return date(today.year - years, 1 if today.month < 7 else 7, 1) - timedelta(days=40)


def cast(today: date) -> dict[str, CastMember]:
    """The fictional people, with ages relative to `today`."""
    def member(handle: str, name: str, birth: date, serial: int, **kw: Any) -> CastMember:
        return CastMember(handle, name, birth, synthetic_pid(birth, serial), **kw)

    people = [
        member("asane", "Kari Nordmann", date(1948, 3, 12), 10, municipality="4601", district="Åsane", gp=ASANE_GP),
        member("frogner", "Ola Hansen", date(1951, 9, 2), 20, municipality="0301", district="Frogner", gp=OTHER_GP),
        member("tromso", "Ingrid Johansen", date(1975, 5, 30), 30, municipality="5501", district=None),
        member("trondheim", "Per Olsen", date(1982, 11, 7), 40, municipality="5001", district=None),
        member("gp_pilot", "Sara Berg", date(1990, 1, 15), 50, municipality="0301", district="Sagene", gp=PILOT_GP),
        member("gp_other", "Jonas Lie", date(1985, 6, 21), 60, municipality="4601", district="Bergenhus", gp=OTHER_GP),
        member("parent", "Nora Dahl", date(1986, 4, 3), 70, municipality="0301", district="Grünerløkka", gp=PILOT_GP,
               acts_for=(("child_small", "parent"), ("child_teen", "parent"), ("child_older", "parent"),
                         ("child_hidden", "parent"), ("elder", "power_of_attorney"))),
        member("child_small", "Emma Dahl", _years_ago(today, 8), 80, municipality="0301", district="Grünerløkka",
               gp=PILOT_GP),
        member("child_teen", "Lukas Dahl", _years_ago(today, 14), 90, municipality="0301", district="Grünerløkka",
               gp=PILOT_GP),
        member("child_older", "Sofie Dahl", _years_ago(today, 17), 100, municipality="0301",
               district="Grünerløkka", gp=PILOT_GP),
        member("child_hidden", "Mia Dahl", _years_ago(today, 6), 110, municipality="0301", district="Grünerløkka",
               confidential=True),
        member("elder", "Arne Dahl", date(1940, 8, 19), 120, municipality="0301", district="Grünerløkka"),
        member("nobody", "Lars Nilsen", date(1970, 2, 10), 130, municipality="0301", district="Sagene"),
        member("mealclient", "Astrid Berg", date(1939, 12, 1), 140, municipality="0301", district="Alna"),
        member("unknown", "Ukjent Person", date(1960, 7, 7), 150, in_directory=False),
    ]
    return {p.handle: p for p in people}


def _at(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), tzinfo=OSLO)


def _fhir(today: date, p: dict[str, CastMember]) -> dict[str, list[FhirAppointment]]:
    def d(n: int) -> date:
        return today + timedelta(days=n)

    hv: list[FhirAppointment] = []
    hn: list[FhirAppointment] = []
    hm: list[FhirAppointment] = []
    gp: list[FhirAppointment] = []
    asane, emma, lukas = p["asane"].pid, p["child_small"].pid, p["child_teen"].pid
    hv += [
        build("hv-asane-1", asane, HAUKELAND, _at(d(12), 9), _at(d(12), 9, 45), title="Kontroll etter grå stær",
              flags=("canAcknowledge", "cancel")),
        build("hv-asane-2", asane, HAUKELAND, _at(d(40), 13), _at(d(40), 13, 30), title="Synsundersøkelse",
              channel="url"),
        build("hv-asane-3", asane, HAUKELAND, _at(d(70), 8), _at(d(70), 8, 20), title="Telefonsamtale med lege",
              channel="phone", flags=()),
        build("hv-asane-4", asane, HAUKELAND, _at(d(-30), 10), _at(d(-30), 11), title="Operasjon", status="fulfilled"),
        build("hv-asane-5", asane, HAUKELAND, _at(d(20), 10), _at(d(20), 11), title="Feilregistrert time",
              status="entered-in-error"),
        build("hv-asane-6", asane, HAUKELAND, _at(d(25), 11), _at(d(25), 11, 30), title="Forslag til time",
              status="proposed"),
        build("hv-emma-1", emma, HAUKELAND, _at(d(9), 14), _at(d(9), 14, 30), title="Øyekontroll barn",
              flags=("canAcknowledge", "cancel")),
        build("hv-lukas-1", lukas, HAUKELAND, _at(d(15), 10), _at(d(15), 10, 30), title="Ungdomspoliklinikk",
              flags=("cancel",)),
        build("hv-elder-1", p["elder"].pid, HAUKELAND, _at(d(5), 12), _at(d(5), 12, 30), title="Hørselstest"),
        build("hv-unknown-1", p["unknown"].pid, HAUKELAND, _at(d(3), 8), _at(d(3), 9), title="Blodprøve"),
        build("hv-cancelled", asane, HAUKELAND, _at(d(33), 9), _at(d(33), 10), title="Avlyst kontroll",
              status="cancelled", cancel_reason="prov"),
    ]
    tromso, trondheim = p["tromso"].pid, p["trondheim"].pid
    hn += [
        build("hn-tromso-1", tromso, UNN_CANCER, _at(d(6), 10), _at(d(6), 11), title="Cellegiftbehandling"),
        build("hn-tromso-2", tromso, UNN_HEART, _at(d(8), 9), _at(d(8), 9, 30), title="Hjerteundersøkelse"),
    ]
    hm += [
        build("hm-trd-1", trondheim, ST_OLAV_ORTO, _at(d(11), 8, 30), _at(d(11), 9),
              title="Kontroll etter kneoperasjon", bundled=True),
        build("hm-trd-2", trondheim, ST_OLAV_SKIN, _at(d(13), 15), _at(d(13), 15, 20), title="Hudundersøkelse",
              bundled=True),
    ]
    sara = p["gp_pilot"].pid
    gp += [
        build("gp-sara-1", sara, GP_OFFICE, _at(d(-90), 9), _at(d(-90), 9, 20), title="Konsultasjon",
              status="fulfilled", practitioner="Lege Anne Vik", appointment_type="Konsultasjon"),
        build("gp-sara-2", sara, GP_OFFICE, _at(d(-20), 10), _at(d(-20), 10, 20), title="Blodprøvekontroll",
              status="noshow", practitioner="Lege Anne Vik"),
        build("gp-sara-3", sara, GP_OFFICE, _at(d(4), 11), _at(d(4), 11, 20), title="Videokonsultasjon",
              channel="url", practitioner="Lege Anne Vik"),
        build("gp-sara-4", sara, GP_OFFICE, _at(d(18), 8), _at(d(18), 8, 20), title="Oppfølging",
              status="cancelled", cancel_reason="pat-crs", practitioner="Lege Anne Vik"),
        build("gp-sara-5", sara, GP_OFFICE, _at(d(-800), 8), _at(d(-800), 8, 20), title="Gammel konsultasjon",
              status="fulfilled"),
        build("gp-emma-1", emma, GP_OFFICE, _at(d(2), 15), _at(d(2), 15, 20), title="Vaksinasjon"),
        build("gp-lukas-1", lukas, GP_OFFICE, _at(d(7), 15), _at(d(7), 15, 20), title="Helsesjekk"),
        build("gp-sofie-1", p["child_older"].pid, GP_OFFICE, _at(d(7), 16), _at(d(7), 16, 20), title="Samtale"),
        build("gp-nora-1", p["parent"].pid, GP_OFFICE, _at(d(10), 9), _at(d(10), 9, 20), title="Konsultasjon"),
        build("gp-jonas-1", p["gp_other"].pid, GP_OFFICE, _at(d(3), 9), _at(d(3), 9, 20),
              title="Skal aldri vises: fastlegen er ikke med i utprøvingen"),
    ]
    return {"helse-vest": hv, "helse-nord": hn, "helse-midt": hm, "fastlege": gp}


def _visit(key: str, service: str, kind: str, status: str, start: datetime, minutes: int, *,
           district: str, employee: str | None = None, cancelled_by: str | None = None,
           naive: bool = False) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)

    def fmt(t: datetime) -> str:
        return t.replace(tzinfo=None).isoformat() if naive else t.isoformat()

    return {"id": key, "service": service, "kind": kind, "status": status, "cancelledBy": cancelled_by,
            "start": fmt(start), "end": fmt(end), "employee": employee, "district": district}


def _visits(today: date, p: dict[str, CastMember]) -> dict[str, dict[str, list[dict[str, Any]]]]:
    def d(n: int) -> date:
        return today + timedelta(days=n)

    def frogner(key: str, *args: Any, **kw: Any) -> dict[str, Any]:
        return _visit(key, *args, district="Frogner", **kw)

    def bgo(key: str, *args: Any, **kw: Any) -> dict[str, Any]:
        return _visit(f"bgo-{key}", *args, district="Åsane", naive=True, **kw)

    oslo = {
        p["frogner"].pid: [
            frogner("osl-f-1", "home_nursing", "regular", "planned", _at(d(1), 8), 30),
            frogner("osl-f-2", "home_nursing", "regular", "planned", _at(d(3), 8), 30),
            frogner("osl-f-3", "home_nursing", "regular", "cancelled", _at(d(5), 8), 30, cancelled_by="service"),
            frogner("osl-f-4", "home_nursing", "performed", "performed", _at(d(-2), 8), 30, employee="Per Pleier"),
            frogner("osl-f-5", "home_nursing", "performed", "performed", _at(d(-9), 8), 30, employee="Per Pleier"),
            frogner("osl-f-6", "home_nursing", "regular", "cancelled", _at(d(-4), 8), 30, cancelled_by="citizen"),
            frogner("osl-f-7", "home_nursing", "assigned", "planned", _at(d(2), 9), 30, employee="Liv Lie"),
            frogner("osl-f-8", "home_nursing", "regular", "planned", _at(d(-1), 8), 30),
        ],
        p["mealclient"].pid: [
            _visit("osl-a-1", "home_nursing", "regular", "planned", _at(d(2), 10), 20, district="Alna"),
            _visit("osl-a-2", "meal_delivery", "regular", "planned", _at(d(2), 12), 10, district="Alna"),
            _visit("osl-a-3", "practical_assistance", "regular", "planned", _at(d(6), 13), 60, district="Alna"),
        ],
        p["elder"].pid: [
            _visit("osl-e-1", "home_nursing", "regular", "planned", _at(d(1), 18), 20, district="Grünerløkka"),
        ],
    }
    bergen = {
        p["asane"].pid: [
            bgo("k-1", "practical_assistance", "regular", "planned", _at(d(3), 10), 60),
            bgo("k-2", "practical_assistance", "regular", "planned", _at(d(10), 10), 60),
            bgo("k-3", "practical_assistance", "assigned", "planned", _at(d(4), 12), 60,
                   employee="Siri Hjelper"),
            bgo("k-4", "practical_assistance", "regular", "cancelled", _at(d(17), 10), 60,
                   cancelled_by="citizen"),
            bgo("k-5", "home_nursing", "performed", "performed", _at(d(-3), 9), 30),
            bgo("k-6", "home_nursing", "regular", "planned", _at(d(0), 23, 30), 20),
            bgo("k-7", "practical_assistance", "regular", "cancelled", _at(d(-7), 10), 60,
                   cancelled_by="service"),
        ],
    }
    return {"oslo": oslo, "bergen": bergen}


def add_crowd(world: World, today: date, count: int, visits_each: int) -> list[CastMember]:
    """`count` more citizens of Åsane, each with `visits_each` planned practical-assistance
    visits a week and more ahead (Bergen accepts their cancellation): for load and chaos
    tests that need many cancellable appointments."""
    added = []
    for n in range(count):
        birth = date(1950 + n % 40, 1 + n % 12, 1 + n % 28)
        member = CastMember(f"crowd-{n}", f"Innbygger {n}", birth, synthetic_pid(birth, 200 + n // 480),
                            municipality="4601", district="Åsane")
        world.people[member.handle] = member
        world.visits["bergen"][member.pid] = [
            _visit(f"bgo-c{n}-{k}", "practical_assistance", "regular", "planned",
                   _at(today + timedelta(days=7 + k), 10), 60, district="Åsane", naive=True)
            for k in range(visits_each)]
        added.append(member)
    return added


def build_world(today: date) -> World:
    """All sandbox data, laid out around `today`."""
    people = cast(today)
    return World(people=people, fhir=_fhir(today, people), visits=_visits(today, people))
