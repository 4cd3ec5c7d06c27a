"""The sources file: which providers exist, what they cover and how to reach them.

Adding a provider is a new `[[sources]]` entry (and, for a new protocol, one connector);
never a schema change. The file is read once at start-up into frozen objects and fails
loudly, naming the entry and field, when something is missing or wrong.
"""

from __future__ import annotations

import os
import re
import string
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from bff.domain.models import HealthRegion, MunicipalService, SourceKind

DEFAULT_SOURCE_TIMEOUT = 2.5
DEFAULT_CACHE_TTL = 60
DEFAULT_LOOKBACK_DAYS = 730
DEFAULT_STALE_TTL = 6 * 3600
DEFAULT_REVALIDATE_TTL = 300
MUNICIPAL_SERVICE_CODES = {
    "home_nursing": MunicipalService.HOME_NURSING,
    "practical_assistance": MunicipalService.PRACTICAL_ASSISTANCE,
}
VISIT_VISIBILITY = frozenset({"regular", "assigned", "performed", "cancelled"})
PROTOCOLS = frozenset({"fhir", "municipal"})
_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


class SourcesFileError(ValueError):
    """The sources file is missing, unreadable or describes a source wrongly."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a source can do: show future rows, show past rows, accept cancellations."""

    future: bool = True
    past: bool = False
    cancel: bool = False


@dataclass(frozen=True, slots=True)
class SourceConfig:
    """One configured provider."""

    id: str
    name: str
    kind: SourceKind
    protocol: str
    base_url: str
    capabilities: Capabilities
    region: HealthRegion | None = None
    municipality: str | None = None
    municipality_name: str | None = None
    districts: tuple[str, ...] = ()
    services: tuple[MunicipalService, ...] = ()
    visibility: frozenset[str] = frozenset()
    departments: tuple[str, ...] = ()
    gp_practices: tuple[str, ...] = ()
    patient_cancel_codes: tuple[str, ...] = ()
    timeout: float = DEFAULT_SOURCE_TIMEOUT
    cache_ttl: int = DEFAULT_CACHE_TTL
    stale_ttl: int = DEFAULT_STALE_TTL
    revalidate_ttl: int = DEFAULT_REVALIDATE_TTL
    lookback_days: int = DEFAULT_LOOKBACK_DAYS
    cancel_notice_hours: int = 0
    webhook_secret: str | None = None

    def serves_district(self, municipality: str | None, district: str | None) -> bool:
        """True when a person living in this municipality and district is covered."""
        if self.kind is not SourceKind.MUNICIPALITY or municipality != self.municipality:
            return False
        wanted = fold(district or "")
        return any(fold(d) == wanted for d in self.districts)

    def allows_department(self, keys: frozenset[str]) -> bool:
        """True when no allow-list is set, or one of `keys` is on it."""
        if not self.departments:
            return True
        allowed = {fold(d) for d in self.departments}
        return any(fold(k) in allowed for k in keys)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """An upstream that is not an appointment source (person directory, notifier)."""

    url: str
    timeout: float = DEFAULT_SOURCE_TIMEOUT


@dataclass(frozen=True, slots=True)
class SourcesFile:
    """Everything the sources file describes."""

    sources: tuple[SourceConfig, ...]
    directory: Endpoint
    notifier: Endpoint | None

    def by_id(self, source_id: str) -> SourceConfig | None:
        """The source with this id, if configured."""
        return next((s for s in self.sources if s.id == source_id), None)


def fold(text: str) -> str:
    """Compare names case-insensitively after Unicode NFC normalisation."""
    return unicodedata.normalize("NFC", text).casefold().strip()


def default_sources_text() -> str:
    """The built-in sources file that wires the sandbox providers."""
    return resources.files("bff").joinpath("default_sources.toml").read_text("utf-8")


def load_sources(path: Path | None, variables: Mapping[str, str] | None = None) -> SourcesFile:
    """Read a sources file (or the built-in default) and substitute `${VAR}` from the
    environment and `variables`."""
    try:
        text = path.read_text("utf-8") if path else default_sources_text()
    except OSError as exc:
        raise SourcesFileError(f"cannot read sources file {path}: {exc.strerror}") from exc
    return parse_sources(text, {**os.environ, **(variables or {})})


def parse_sources(text: str, variables: Mapping[str, str]) -> SourcesFile:
    """Parse sources TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SourcesFileError(f"sources file is not valid TOML: {exc}") from exc
    data = _substitute(data, variables)
    entries = data.get("sources")
    if not isinstance(entries, list) or not entries:
        raise SourcesFileError("sources file needs at least one [[sources]] entry")
    sources = tuple(_source(entry, i) for i, entry in enumerate(entries))
    ids = [s.id for s in sources]
    if len(set(ids)) != len(ids):
        raise SourcesFileError(f"source ids must be unique, got {ids}")
    return SourcesFile(
        sources=sources,
        directory=_endpoint(data.get("directory"), "directory", required=True),
        notifier=_endpoint(data.get("notifier"), "notifier", required=False),
    )


def _substitute(value: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        try:
            return string.Template(value).substitute(variables)
        except KeyError as exc:
            raise SourcesFileError(f"sources file uses ${{{exc.args[0]}}}, which is not set") from exc
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def _endpoint(table: Any, name: str, *, required: bool) -> Any:
    if table is None and not required:
        return None
    if not isinstance(table, dict) or not isinstance(table.get("url"), str):
        raise SourcesFileError(f"[{name}] needs a url")
    return Endpoint(url=table["url"], timeout=float(table.get("timeout", DEFAULT_SOURCE_TIMEOUT)))


def _source(entry: Any, index: int) -> SourceConfig:
    if not isinstance(entry, dict):
        raise SourcesFileError(f"sources[{index}] must be a table")
    where = f"source {entry.get('id', index)!r}"
    try:
        return _build_source(entry, where)
    except (KeyError, TypeError, ValueError) as exc:
        raise SourcesFileError(f"{where}: {exc}") from exc


def _build_source(entry: dict[str, Any], where: str) -> SourceConfig:
    source_id = str(entry["id"])
    if not _SOURCE_ID.match(source_id):
        raise ValueError("id must be lower-case letters, digits and dashes")
    kind = SourceKind[str(entry["kind"]).upper()]
    protocol = str(entry["protocol"])
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {sorted(PROTOCOLS)}")
    visibility = frozenset(entry.get("visibility", []))
    if not visibility <= VISIT_VISIBILITY:
        raise ValueError(f"visibility may only hold {sorted(VISIT_VISIBILITY)}")
    source = SourceConfig(
        id=source_id,
        name=str(entry["name"]),
        kind=kind,
        protocol=protocol,
        base_url=str(entry["base_url"]).rstrip("/"),
        capabilities=Capabilities(**entry.get("capabilities", {})),
        region=HealthRegion[entry["region"]] if entry.get("region") else None,
        municipality=entry.get("municipality"),
        municipality_name=entry.get("municipality_name"),
        districts=tuple(entry.get("districts", ())),
        services=tuple(MUNICIPAL_SERVICE_CODES[s] for s in entry.get("services", ())),
        visibility=visibility,
        departments=tuple(str(d) for d in entry.get("departments", ())),
        gp_practices=tuple(str(p) for p in entry.get("gp_practices", ())),
        patient_cancel_codes=tuple(entry.get("patient_cancel_codes", ())),
        timeout=float(entry.get("timeout", DEFAULT_SOURCE_TIMEOUT)),
        cache_ttl=int(entry.get("cache_ttl", DEFAULT_CACHE_TTL)),
        stale_ttl=int(entry.get("stale_ttl", DEFAULT_STALE_TTL)),
        revalidate_ttl=int(entry.get("revalidate_ttl", DEFAULT_REVALIDATE_TTL)),
        lookback_days=int(entry.get("lookback_days", DEFAULT_LOOKBACK_DAYS)),
        cancel_notice_hours=int(entry.get("cancel_notice_hours", 0)),
        webhook_secret=entry.get("webhook_secret"),
    )
    _check_kind_fields(source)
    return source


def _check_kind_fields(source: SourceConfig) -> None:
    if source.kind is SourceKind.MUNICIPALITY and not (source.municipality and source.districts):
        raise ValueError("a municipality source needs municipality and districts")
    if source.kind is SourceKind.MUNICIPALITY and not source.visibility:
        raise ValueError("a municipality source needs visibility")
    if source.kind is SourceKind.GP and not source.gp_practices:
        raise ValueError("a GP source needs gp_practices (the pilot's HER-ids)")
    if source.kind is SourceKind.HOSPITAL and source.region is None:
        raise ValueError("a hospital source needs region")
    if source.capabilities.cancel and source.protocol == "municipal" and not source.webhook_secret:
        raise ValueError("a municipal source that can cancel needs webhook_secret")
