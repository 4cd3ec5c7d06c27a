"""OpenTelemetry traces, configured by the standard `OTEL_*` environment variables: with
none set nothing is exported and the BFF makes no spans at all.

`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) sends them to an
OTLP/HTTP collector; `OTEL_TRACES_EXPORTER=console` prints them; `OTEL_SERVICE_NAME`
names the service (default `timeavtaler-bff`). Spans carry ids, names of operations and
sources, statuses and counts — never variables, tokens, names or national identity
numbers; Redis spans name the command only."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import Span, SpanKind

SERVICE_NAME = "timeavtaler-bff"
ENDPOINTS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
tracer = trace.get_tracer("timeavtaler-bff")
"""A proxy until a provider is set; `span()` makes no span while tracing is off."""
_on = False


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces."""
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    return exporter in ("otlp", "console") or any(environ.get(name) for name in ENDPOINTS)


def configure_tracing(environ: Mapping[str, str] = os.environ) -> bool:
    """Set up the SDK (once per process) when the environment asks for traces; whether
    tracing is on."""
    global _on
    if _on or not wanted(environ):
        return _on
    exporter: SpanExporter
    if environ.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "console":
        exporter = ConsoleSpanExporter()
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": environ.get("OTEL_SERVICE_NAME",
                                                                                     SERVICE_NAME)}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    from opentelemetry.instrumentation.redis import RedisInstrumentor

    RedisInstrumentor().instrument(tracer_provider=provider)
    _on = True
    return True


def on() -> bool:
    return _on


@contextlib.contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL,
         attributes: Mapping[str, str | int | bool] | None = None) -> Iterator[Span | None]:
    """A span around the block while tracing is on; nothing (and None) otherwise."""
    if not _on:
        yield None
        return
    with tracer.start_as_current_span(name, kind=kind, attributes=attributes) as current:
        yield current


def trace_id() -> str | None:
    """The current trace's id (32 hex digits), for log lines; None outside a trace."""
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
