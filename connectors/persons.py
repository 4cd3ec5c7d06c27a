"""Connector for the person directory (name, address, GP, whom one may act for)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote

from bff.domain.models import PersonRecord, Representation, RepresentationBasis
from connectors.base import SourceUnavailable
from connectors.http import ProviderClient, raise_for_status, read_json, send

DIRECTORY = "person-directory"


class HttpPersonDirectory:
    """Looks persons up in the directory over HTTP; a 404 means unknown."""

    def __init__(self, base_url: str, client: ProviderClient) -> None:
        self._base = base_url.rstrip("/")
        self._client = client

    async def get(self, pid: str) -> PersonRecord | None:
        request = self._client.build_request("GET", f"{self._base}/{quote(pid, safe='')}")
        response = await send(DIRECTORY, self._client, request)
        if response.status_code == 404:
            return None
        raise_for_status(DIRECTORY, response)
        body = read_json(DIRECTORY, response)
        try:
            return parse_person(body, pid)
        except (KeyError, TypeError, ValueError) as exc:
            raise SourceUnavailable(DIRECTORY, "person record cannot be read", "malformed") from exc


def _date(value: Any) -> date | None:
    return date.fromisoformat(value) if isinstance(value, str) and value else None


def parse_person(body: Any, pid: str) -> PersonRecord:
    """Map the directory's JSON; the record must be the person asked for."""
    if not isinstance(body, dict) or body.get("pid") != pid:
        raise ValueError("record does not match the person asked for")
    address = body.get("address") or {}
    gp = body.get("gp") or {}
    return PersonRecord(
        pid=pid,
        name=str(body["name"]),
        birth_date=_date(body.get("birthDate")),
        confidential=bool(body.get("confidential", False)),
        municipality=address.get("municipality"),
        district=address.get("district"),
        gp_her_id=str(gp["herId"]) if gp.get("herId") else None,
        may_act_for=tuple(
            Representation(
                pid=str(r["pid"]),
                name=str(r["name"]),
                birth_date=_date(r.get("birthDate")),
                basis=RepresentationBasis(r["basis"]),
            )
            for r in body.get("mayActFor") or ()
        ),
    )
