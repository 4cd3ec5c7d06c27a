"""The connectors, by the sources file's `protocol`: adding a protocol is one connector
module and one entry here (and its name in the sources file's `PROTOCOLS`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bff.domain.sources import SourceConfig
from connectors.base import AppointmentConnector, CancelConnector
from connectors.fhir.connector import FhirCanceller, FhirConnector
from connectors.http import ProviderClient
from connectors.municipal import MunicipalCanceller, MunicipalConnector


@dataclass(frozen=True, slots=True)
class Adapter:
    """How to read one protocol's appointments, and how to ask it to cancel one."""

    reader: Callable[[SourceConfig, ProviderClient], AppointmentConnector]
    canceller: Callable[[SourceConfig, ProviderClient], CancelConnector]


def _municipal_reader(source: SourceConfig, client: ProviderClient) -> AppointmentConnector:
    organization = f"{source.municipality_name} kommune" if source.municipality_name else source.name
    return MunicipalConnector(source.id, source.base_url, client, organization)


ADAPTERS: Mapping[str, Adapter] = {
    "fhir": Adapter(
        reader=lambda s, c: FhirConnector(s.id, s.base_url, c, frozenset(s.patient_cancel_codes)),
        canceller=lambda s, c: FhirCanceller(s.id, s.base_url, c)),
    "municipal": Adapter(
        reader=_municipal_reader,
        canceller=lambda s, c: MunicipalCanceller(s.id, s.base_url, c)),
}


def reader(source: SourceConfig, client: ProviderClient) -> AppointmentConnector:
    """The connector that reads `source`'s appointments."""
    return ADAPTERS[source.protocol].reader(source, client)


def canceller(source: SourceConfig, client: ProviderClient) -> CancelConnector:
    """The connector that sends `source`'s cancellation requests."""
    return ADAPTERS[source.protocol].canceller(source, client)
