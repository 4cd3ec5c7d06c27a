"""The sources file: which providers exist, what they cover and how to reach them.

Adding a provider is a new `[[sources]]` entry (and, for a new protocol, one connector);
never a schema change. The file is read once at start-up into frozen objects and fails
loudly, naming the entry and field, when something is missing or wrong.
"""

from __future__ import annotations

import json
import os
import re
import string
import tomllib
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import jwt

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
AUTH_KINDS = frozenset({"none", "helseid"})
CLIENT_KEY_ALGORITHMS = {"RSA": ("RS256", "PS256"), "EC": ("ES256",)}
"""What HelseID takes for client assertions and DPoP proofs, by key type; the first is the
default when the JWK names no `alg`."""


class SourcesFileError(ValueError):
    """The sources file is missing, unreadable or describes a source wrongly."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a source can do: show future rows, show past rows, accept cancellations."""

    future: bool = True
    past: bool = False
    cancel: bool = False


@dataclass(frozen=True, slots=True)
class UpstreamAuth:
    """How the BFF proves who it is to an upstream: `none`, or a HelseID machine token
    (client credentials with a `private_key_jwt` client assertion, DPoP-bound unless
    `dpop` is false). `key` is the client's private JWK as JSON; never printed."""

    kind: str
    token_url: str = ""
    issuer: str = ""
    """The token server's issuer, the client assertion's `aud` (default: `token_url`
    without its `/connect/token`, as HelseID names its endpoints)."""
    client_id: str = ""
    scope: tuple[str, ...] = ()
    key: str = field(default="", repr=False)
    algorithm: str = ""
    dpop: bool = True
    timeout: float = DEFAULT_SOURCE_TIMEOUT

    @property
    def required(self) -> bool:
        """A credential is sent (kind is not `none`)."""
        return self.kind != "none"


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
    auth: UpstreamAuth | None = None
    """None: the file says nothing, so no credential is sent (refused by the production profile)."""

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
    auth: UpstreamAuth | None = None


@dataclass(frozen=True, slots=True)
class SourcesFile:
    """Everything the sources file describes."""

    sources: tuple[SourceConfig, ...]
    directory: Endpoint
    notifier: Endpoint | None

    def by_id(self, source_id: str) -> SourceConfig | None:
        """The source with this id, if configured."""
        return next((s for s in self.sources if s.id == source_id), None)

    def upstreams(self) -> dict[str, UpstreamAuth | None]:
        """Every upstream the BFF calls (the sources, `directory`, `notifier`) by name, with its `auth`."""
        named = {s.id: s.auth for s in self.sources}
        named["directory"] = self.directory.auth
        if self.notifier is not None:
            named["notifier"] = self.notifier.auth
        return named

    def without_auth(self) -> list[str]:
        """Upstreams whose entry has no `auth` table: the production profile refuses to
        start with any (`auth = { kind = "none" }` says so on purpose)."""
        return [name for name, auth in self.upstreams().items() if auth is None]


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
    try:
        auth = _auth(table.get("auth"))
    except (KeyError, TypeError, ValueError) as exc:
        raise SourcesFileError(f"[{name}]: {exc}") from exc
    return Endpoint(url=table["url"], timeout=float(table.get("timeout", DEFAULT_SOURCE_TIMEOUT)), auth=auth)


def _auth(table: Any) -> UpstreamAuth | None:
    """An upstream's `auth` table. Every message names the field, never the key's content."""
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ValueError("auth must be a table, e.g. auth = { kind = \"helseid\", … }")
    kind = table.get("kind")
    if kind not in AUTH_KINDS:
        raise ValueError(f"auth.kind must be one of {sorted(AUTH_KINDS)}")
    if kind == "none":
        return UpstreamAuth(kind="none")
    missing = [f for f in ("token_url", "client_id", "scope") if not table.get(f)]
    if missing or not (table.get("key") or table.get("key_file")):
        raise ValueError(f"auth of kind helseid needs {', '.join(missing or ['key or key_file'])}")
    scope = table["scope"]
    scopes = (scope,) if isinstance(scope, str) else tuple(str(s) for s in scope)
    key, algorithm = _client_key(table)
    token_url = str(table["token_url"])
    return UpstreamAuth(
        kind="helseid", token_url=token_url, client_id=str(table["client_id"]), scope=scopes,
        issuer=str(table.get("issuer") or token_url.removesuffix("/connect/token")),
        key=key, algorithm=algorithm, dpop=bool(table.get("dpop", True)),
        timeout=float(table.get("timeout", DEFAULT_SOURCE_TIMEOUT)))


def _client_key(table: dict[str, Any]) -> tuple[str, str]:
    """The private JWK from `key` (its JSON, usually `${HELSEID_KEY}`) or `key_file`, and
    the algorithm it signs with; checked here so a wrong key stops the start."""
    if table.get("key_file"):
        try:
            text = Path(str(table["key_file"])).read_text("utf-8")
        except OSError as exc:
            raise ValueError(f"auth.key_file cannot be read: {exc.strerror}") from None
        where = "auth.key_file"
    else:
        text, where = str(table["key"]), "auth.key"
    try:
        jwk = json.loads(text)
    except ValueError:
        raise ValueError(f"{where} is not a JSON Web Key (JSON)") from None
    if not isinstance(jwk, dict) or jwk.get("kty") not in CLIENT_KEY_ALGORITHMS:
        raise ValueError(f"{where} must be an RSA or EC JSON Web Key") from None
    if "d" not in jwk:
        raise ValueError(f"{where} is a public key; HelseID needs the client's private key")
    allowed = CLIENT_KEY_ALGORITHMS[jwk["kty"]]
    algorithm = str(jwk.get("alg") or allowed[0])
    if algorithm not in allowed:
        raise ValueError(f"{where}: alg {algorithm} does not fit a {jwk['kty']} key (use {', '.join(allowed)})")
    if jwk["kty"] == "EC" and jwk.get("crv") != "P-256":
        raise ValueError(f"{where}: an EC key must be on the P-256 curve (ES256)")
    try:
        jwt.PyJWK(jwk, algorithm)
    except (jwt.PyJWTError, ValueError, TypeError):
        raise ValueError(f"{where} is not a usable {jwk['kty']} private key") from None
    return json.dumps(jwk), algorithm


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
        auth=_auth(entry.get("auth")),
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
