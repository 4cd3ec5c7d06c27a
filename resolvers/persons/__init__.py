"""Persons: the viewer and those they may act for."""
