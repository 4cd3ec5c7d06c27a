"""Outbound adapters: one module per upstream protocol, returning plain domain objects."""
