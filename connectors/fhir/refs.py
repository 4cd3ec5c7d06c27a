"""FHIR reference resolution within one response: contained resources first, then the
entries of the same Bundle (by `fullUrl` or `Type/id`); nothing is ever fetched."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

Resource = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class BundleIndex:
    """Entries of one response, addressable by `fullUrl` and by `Type/id`."""

    entries: Mapping[str, Resource]

    @classmethod
    def of(cls, resources: Iterable[tuple[str | None, Resource]]) -> BundleIndex:
        index: dict[str, Resource] = {}
        for full_url, resource in resources:
            if isinstance(full_url, str) and full_url:
                index[full_url] = resource
            kind, ident = resource.get("resourceType"), resource.get("id")
            if isinstance(kind, str) and kind and isinstance(ident, str) and ident:
                index[f"{kind}/{ident}"] = resource
        return cls(index)

    def find(self, reference: str) -> Resource | None:
        if reference in self.entries:
            return self.entries[reference]
        parts = reference.rstrip("/").split("/")
        return self.entries.get("/".join(parts[-2:])) if len(parts) >= 2 else None


def iter_entries(bundle: Any) -> Iterator[tuple[str | None, Resource]]:
    """The (fullUrl, resource) pairs of a Bundle, skipping malformed entries."""
    entries = bundle.get("entry")
    for entry in entries if isinstance(entries, list) else ():
        if isinstance(entry, dict) and isinstance(entry.get("resource"), dict):
            yield entry.get("fullUrl"), entry["resource"]


class Resolver:
    """Resolves references from one Appointment: contained first, then the Bundle."""

    def __init__(self, appointment: Resource, bundle: BundleIndex) -> None:
        contained = appointment.get("contained")
        self._contained = {
            str(r.get("id")): r for r in (contained if isinstance(contained, list) else ()) if isinstance(r, dict)
        }
        self._bundle = bundle

    def resolve(self, reference: Any) -> Resource | None:
        ref = reference.get("reference") if isinstance(reference, dict) else None
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("#"):
            return self._contained.get(ref[1:])
        _, _, tail = ref.rpartition("/")
        local = self._contained.get(tail)
        if local is not None and ref.endswith(f"{local.get('resourceType')}/{tail}"):
            return local
        return self._bundle.find(ref)

    def all_resources(self) -> Iterator[Resource]:
        yield from self._contained.values()
        yield from self._bundle.entries.values()
