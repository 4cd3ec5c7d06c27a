"""The citizen's page at `/`, in headless Chromium as a citizen meets it: the list, a
keyboard-only cancellation answered live, the detail view, the calendar, representation,
a failing provider, 375 px; axe-core on every view; nothing fetched from elsewhere and
only trusted documents sent. Screenshots go to test-output/."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

from bff.web.citizen import operation_ids
from bff.web.trusted import default_manifest_path
from tests.bff.web.test_limits import production_bff
from tests.clients.node import NODE_DIR, require_node
from tests.clients.test_graphiql import OUTPUT, require_chromium
from tests.conftest import Bff, Sandbox

TRUSTED = {f"sha256:{digest}" for digest in json.loads(default_manifest_path().read_text("utf-8"))}
PAGE_DOCUMENTS = operation_ids(json.loads(default_manifest_path().read_text("utf-8")))
"""Operation name → documentId; the page's own are `Citizen…` (bff/trusted/operations)."""


def names(sent: list[dict[str, Any]]) -> set[str]:
    by_id = {document: name for name, document in PAGE_DOCUMENTS.items()}
    return {by_id[s["documentId"]] for s in sent}


async def test_a_citizen_sees_cancels_and_switches_person_on_the_page(bff: Bff, sandbox: Sandbox) -> None:
    node, chromium = require_node(), require_chromium()
    OUTPUT.mkdir(exist_ok=True)
    # Bergen answers after 2.5 s, so the page shows the wait before the answer.
    await sandbox.municipal("bergen", delay_ms=2500, rule="notice", notice_hours=48, drop_webhooks=False)
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "citizen.mjs"), bff.url, sandbox.url, str(OUTPUT), cwd=NODE_DIR,
        env={**os.environ, "CHROMIUM": chromium}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 240)
    assert process.returncode == 0, err.decode()[-3000:]
    seen: dict[str, Any] = json.loads(out)

    assert seen["elsewhere"] == [], "the page loaded something from another host"
    assert seen["errors"] == []
    assert seen["graphql"] and all(g["documentId"] in TRUSTED and g["query"] is None for g in seen["graphql"])
    assert seen["subscribes"] and all(s["documentId"] in TRUSTED and not s["query"] for s in seen["subscribes"])
    assert names(seen["graphql"]) == {"CitizenMe", "CitizenList", "CitizenCancel", "CitizenAppointment"}
    assert names(seen["subscribes"]) == {"CitizenUpdates"}
    assert {view: found for view, found in seen["axe"].items() if found} == {}, "serious or critical WCAG violations"
    assert set(seen["axe"]) == {"list", "dialog", "detail", "representation", "notice", "mobile"}

    kari = seen["views"]["kari"]
    assert {r["title"] for r in kari["rows"]} >= {"Kontroll etter grå stær", "Praktisk bistand", "Hjemmesykepleie"}
    assert {r["source"] for r in kari["rows"]} == {"Sykehus i Helse Vest", "Bergen kommune, hjemmetjenester"}
    assert {r["status"] for r in kari["rows"]} >= {"Avlyst av deg", "Avlyst av behandler", "Foreslått", "Tildelt"}
    assert len(kari["days"]) > 3 and all(re.match(r"^[A-ZÆØÅ][a-zæøå]+dag \d+\. ", d) for d in kari["days"])
    assert kari["count"] == f"Viser {len(kari['rows'])} av {len(kari['rows'])} timer."

    assert seen["reachedByTab"] and seen["confirmFocused"] == "confirm-yes"
    assert seen["escapeReturnsFocus"], "Escape closes the dialog and puts focus back on the row's button"
    assert seen["pending"] == "Venter på svar fra Bergen kommune"
    assert seen["decided"] == "Avbestilt"
    assert seen["rejected"].startswith("Ikke godtatt: ") and len(seen["rejected"]) > len("Ikke godtatt: ") + 5
    sent = await sandbox.cancellation_requests()
    assert [(r["tenant"], r["reason"], r["status"]) for r in sent] == [("bergen", "Jeg er bortreist.", "accepted"),
                                                                      ("bergen", "", "rejected")]

    assert {"Tid", "Sted", "Status", "Fra"} <= set(seen["detail"]["facts"])
    assert seen["download"] == "timeavtaler.ics"
    assert "Gjennomført" in {r["status"] for r in seen["views"]["pastGp"]["rows"]}

    parent = seen["views"]["parent"]["subjects"]
    assert parent[0] == "Nora Dahl (deg)"
    assert {p.split(" (f. ")[0] for p in parent[1:]} == {"Emma Dahl", "Lukas Dahl", "Arne Dahl"}
    assert all(re.search(r" \(f\. \d\d\.\d\d\.\d{4}\)$", p) for p in parent[1:]), parent
    lukas = seen["views"]["lukas"]["rows"]
    assert lukas and not [r for r in lukas if r["source"].startswith("Sykehus")], "a 14-year-old's hospital rows"

    assert seen["views"]["failing"]["notices"] == [
        "Vi får ikke hentet timer fra Sykehus i Helse Nord (enkelte avdelinger) akkurat nå. "
        "Listen kan derfor mangle timer; prøv igjen senere."]
    assert seen["mobileOverflow"] <= 0, "the page scrolls sideways at 375 px"
    for shot in ("citizen-desktop.png", "citizen-375.png"):
        assert (OUTPUT / shot).stat().st_size > 20_000


async def test_the_page_is_locked_down_and_its_dev_tokens_are_sandbox_only(bff: Bff) -> None:
    page = await bff.http.get(f"{bff.url}/")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe" not in csp and "default-src 'none'" in csp
    assert not re.search(r'(src|href)="(https?:)?//', page.text), "the page names another host"
    config = json.loads(re.search(r'<script id="timeavtaler-config" type="application/json">(.*?)</script>',
                                  page.text).group(1))  # type: ignore[union-attr]
    assert set(config["documents"].values()) == TRUSTED
    for asset in ("/web/app.js", "/web/style.css", "/web/graphql-ws.min.js"):
        assert (await bff.http.get(f"{bff.url}{asset}")).status_code == 200
    token = (await bff.http.get(f"{bff.url}/_dev/token", params={"person": "parent"})).json()
    assert token["name"] == "Nora Dahl" and token["token"].count(".") == 2
    assert (await bff.http.get(f"{bff.url}/_dev/token", params={"person": "nobody-here"})).status_code == 404


async def test_production_serves_the_page_only_when_asked_and_never_dev_tokens(make_bff: Any, tmp_path: Path) -> None:
    off = await production_bff(make_bff, tmp_path)
    assert (await off.http.get(f"{off.url}/")).status_code == 404
    on = await production_bff(make_bff, tmp_path, web_client=True)
    page = await on.http.get(f"{on.url}/")
    assert page.status_code == 200 and '"sandbox": false' in page.text
    assert (await on.http.get(f"{on.url}/_dev/token", params={"person": "asane"})).status_code == 404
    assert (await on.http.get(f"{on.url}/_dev/people")).status_code == 404


async def test_the_page_works_unchanged_in_production_with_the_host_pages_token(make_bff: Any,
                                                                                tmp_path: Path) -> None:
    """Trusted documents only (the production default) and the token from the host page."""
    node, chromium = require_node(), require_chromium()
    on = await production_bff(make_bff, tmp_path, web_client=True)
    process = await asyncio.create_subprocess_exec(
        node, str(NODE_DIR / "citizen.mjs"), "--production", on.url, on.token("asane"), cwd=NODE_DIR,
        env={**os.environ, "CHROMIUM": chromium}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode == 0, err.decode()[-3000:]
    seen: dict[str, Any] = json.loads(out)
    assert seen["elsewhere"] == [] and seen["errors"] == []
    assert {r["title"] for r in seen["views"]["kari"]["rows"]} >= {"Kontroll etter grå stær", "Praktisk bistand"}
    assert seen["picker"] == 0, "no sandbox person picker in production"
    assert seen["graphql"] and all(g["documentId"] in TRUSTED and g["query"] is None for g in seen["graphql"])
