"""One access policy: for every sandbox person, `appointment(id)` finds exactly the
appointments their lists show — their own and those of everyone they may act for, with
`includePast` — and nothing else the sandbox holds, whoever it belongs to."""

from __future__ import annotations

from typing import Any

from bff.domain.ids import Ids
from bff.domain.sources import load_sources
from tests.conftest import PEOPLE, Bff, Sandbox

EVERYTHING = """
query All($on: ID) {
  appointments(filter: {includePast: true}, first: 100, onBehalfOf: $on) { totalCount nodes { id } }
}
"""
REPS = "{ me { mayActFor { id } } }"
CHUNK = 10


def every_row_the_sandbox_holds(bff: Bff, sandbox: Sandbox) -> list[str]:
    """An appointment id for every row of every sandbox provider, for its real owner."""
    ids: Ids = bff.app.state.services.ids
    world = sandbox.state.world
    found = []
    for source in load_sources(None, {"SANDBOX_URL": sandbox.url}).sources:
        tenant = source.base_url.rstrip("/").rsplit("/", 1)[-1]
        if source.protocol == "fhir":
            rows = [(a.patient, a.resource["id"]) for a in world.fhir.get(tenant, [])]
        else:
            rows = [(pid, v["id"]) for pid, visits in world.visits.get(tenant, {}).items() for v in visits]
        found += [ids.encode("A", source.id, upstream, ids.pseudonym(pid)) for pid, upstream in rows]
    return found


async def listed(bff: Bff, who: str) -> set[str]:
    subjects: list[str | None] = [None, *[p["id"] for p in (await bff.query(REPS, who=who))["me"]["mayActFor"]]]
    shown: set[str] = set()
    for on in subjects:
        answer = (await bff.query(EVERYTHING, {"on": on}, who=who))["appointments"]
        assert answer["totalCount"] == len(answer["nodes"])
        shown |= {n["id"] for n in answer["nodes"]}
    return shown


async def found_by_id(bff: Bff, who: str, candidates: list[str]) -> set[str]:
    found: set[str] = set()
    for at in range(0, len(candidates), CHUNK):
        chunk = candidates[at:at + CHUNK]
        document = "{ " + " ".join(f'a{n}: appointment(id: "{c}") {{ id }}' for n, c in enumerate(chunk)) + " }"
        data: dict[str, Any] = await bff.query(document, who=who)
        found |= {c for n, c in enumerate(chunk) if data[f"a{n}"] is not None}
    return found


async def test_an_id_is_found_if_and_only_if_a_list_of_the_viewer_shows_it(bff: Bff, sandbox: Sandbox) -> None:
    candidates = every_row_the_sandbox_holds(bff, sandbox)
    assert len(candidates) > 40
    seen = {}
    for who in [h for h, m in PEOPLE.items() if m.in_directory]:
        seen[who] = await listed(bff, who)
        found = await found_by_id(bff, who, candidates)
        assert found == seen[who], (who, len(found - seen[who]), len(seen[who] - found))
    # Not vacuous: people see rows, nobody sees everything, and a parent sees more than their own.
    assert all(0 < len(seen[who]) < len(candidates) for who in ("asane", "parent", "frogner"))
    assert len(seen["parent"]) > len((await bff.query(EVERYTHING, who="parent"))["appointments"]["nodes"])
