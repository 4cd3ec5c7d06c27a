"""Names the upstream contracts fix, shared by the connectors that read them and the
sandbox that writes them: the national identifier systems and Helsenorge's FHIR flag and
extension URLs."""

from __future__ import annotations

FNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.1"
"""Fødselsnummer."""
DNR_SYSTEM = "urn:oid:2.16.578.1.12.4.1.4.2"
"""D-nummer."""
FLAG_SYSTEM = "http://helsenorge.no/fhir/CodeSystem/hn-appointment-flag-code-cs"
VIRTUAL_SERVICE_URL = "http://hl7.no/fhir/StructureDefinition/no-basis-virtual-service"
CANCEL_FLAG = "cancel"
"""The Helsenorge flag code that lets the citizen cancel an appointment."""
