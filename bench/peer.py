"""The performance peer (Apollo Server 5 + DataLoader, `../shared/peers`), run beside the BFF
on the same providers, tokens and query: its sources file is made from the BFF's sources
file, its JWKS from the bench's development key, its response cache on (`PEER_CACHE=1`).

The comparison is issue 21's: five sources (three hospitals, the pilot GP, Oslo), 30
appointments per person (6 per source), FHIR pages of 5 — so 10 upstream calls per cold
list with the directory's — every call 50 ms, each server pinned to the same one core
while the load generator and the providers run on the others (`pinning`).

`../shared` may be read-only (it is on CI): the peer is copied to the run's temporary
folder and installed there with `npm ci` from its lock file."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bff.domain.sources import SourceConfig, load_sources

PEERS = Path(__file__).resolve().parent.parent.parent / "shared" / "peers"
PROTOCOLS = {"fhir": "fhir", "municipal": "homecare"}
LEFT_OUT = "helse-sor-ost"
"""The bench's sixth source, not in the issue's five."""
PER_SOURCE, PAGE_SIZE, BIG_PER_SOURCE = 6, 5, 100
"""30 appointments per person over the five sources, in pages of 5; 500 for the big ones."""


def pinning() -> tuple[list[str], list[str]]:
    """`taskset` prefixes: the server under test on CPU 0, everything else on the rest
    (none on a one-core machine)."""
    cores = os.cpu_count() or 1
    if cores < 2 or shutil.which("taskset") is None:
        return [], []
    return ["taskset", "-c", "0"], ["taskset", "-c", f"1-{cores - 1}"]


def five_sources(folder: Path) -> Path:
    """The bench's sources file without `LEFT_OUT`, written into `folder`."""
    head, *blocks = (Path(__file__).resolve().parent / "sources.toml").read_text("utf-8").split("[[sources]]")
    path = folder / "peer-sources.toml"
    path.write_text("[[sources]]".join([head, *(b for b in blocks if f'id = "{LEFT_OUT}"' not in b)]), "utf-8")
    return path


def available() -> str | None:
    """Why the peer cannot run here, or None when it can."""
    if not (PEERS / "apollo-peer" / "server.mjs").is_file():
        return f"no peer at {PEERS}"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "Node.js and npm are needed for the peer"
    return None


def _source(source: SourceConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": source.id, "name": source.name, "kind": source.kind.value, "protocol": PROTOCOLS[source.protocol],
        "baseUrl": source.base_url, "timeoutMs": int(source.timeout * 1000),
        "capabilities": {"future": source.capabilities.future, "past": source.capabilities.past,
                         "cancel": source.capabilities.cancel}}
    if source.region is not None:
        entry["region"] = source.region.name
    if source.departments:
        entry["departments"] = list(source.departments)
    if source.gp_practices:
        entry["herIds"] = list(source.gp_practices)
    if source.municipality:
        entry.update(municipality=source.municipality, districts=list(source.districts),
                     services=[s.value for s in source.services], visibility=sorted(source.visibility))
    return entry


def sources_json(sources_toml: Path, providers_url: str) -> dict[str, Any]:
    """The peer's sources file for the providers the BFF's `sources_toml` names."""
    catalogue = load_sources(sources_toml, {"SANDBOX_URL": providers_url})
    directory = catalogue.directory.url.removesuffix("/persons")
    return {"personDirectory": {"baseUrl": directory, "timeoutMs": int(catalogue.directory.timeout * 1000)},
            "timeoutMs": int(max(s.timeout for s in catalogue.sources) * 1000),
            "sources": [_source(s) for s in catalogue.sources]}


def install(folder: Path) -> Path:
    """Copy the peer into `folder` and `npm ci` it there; returns its folder."""
    target = folder / "peers"
    shutil.copytree(PEERS, target, ignore=shutil.ignore_patterns("node_modules"))
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=target, check=True,
                   stdout=subprocess.DEVNULL)
    return target


def command(folder: Path, port: int, jwks: dict[str, Any], sources: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
    """The peer's command and environment (response cache on)."""
    (folder / "jwks.json").write_text(json.dumps(jwks))
    (folder / "sources.json").write_text(json.dumps(sources))
    env = {**os.environ, "JWKS_FILE": str(folder / "jwks.json"), "PEER_SOURCES": str(folder / "sources.json"),
           "PEER_CACHE": "1", "PORT": str(port), "HOST": "127.0.0.1", "NODE_ENV": "production"}
    return ["node", str(folder / "apollo-peer" / "server.mjs")], env
