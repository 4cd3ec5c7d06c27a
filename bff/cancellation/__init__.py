"""Cancelling: the service that takes requests and records decisions, their Redis store,
the event streams subscribers read, the worker that finishes what a crash left, and the
varsel text."""
