"""FHIR R4: the connector (search with paging, cancel), the Helsenorge mapping, and
reference resolution inside a Bundle."""
