"""Traces with OpenTelemetry: on when `OTEL_EXPORTER_OTLP_ENDPOINT` (or
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) is set, off otherwise (docs/operations.md,
"Traces").

On, each process installs an SDK tracer provider exporting over OTLP/HTTP
(protobuf; the exporter reads the standard OTEL_EXPORTER_OTLP_* variables, the
provider OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES and OTEL_TRACES_SAMPLER*),
instruments asyncpg (a span per statement) and the app gets Litestar's
OpenTelemetry plugin (service.http.tracing: a server span per request). Our own
spans come from `span()`: `parley.decide`, `parley.append`,
`parley.projection.batch`, `parley.seal`.

Off, nothing is installed: no provider, no plugin, asyncpg untouched, and `span()`
returns one shared do-nothing context manager (not even OpenTelemetry's no-op
span and its context switch), so tracing off costs what a function call costs.

`use(provider)` installs a provider of the caller's (the tests' in-memory
exporter, bench.tracing); `reset()` undoes it.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import trace

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger("parley.tracing")

_OFF = contextlib.nullcontext()
_tracer: trace.Tracer | None = None
_provider: trace.TracerProvider | None = None


def span(name: str, attributes: Mapping[str, Any] | None = None) -> contextlib.AbstractContextManager[Any]:
    """A span around a block, child of the current one (a do-nothing context when
    tracing is off)."""
    if _tracer is None:
        return _OFF
    return _tracer.start_as_current_span(name, attributes=attributes)


def quiet() -> contextlib.AbstractContextManager[Any]:
    """No instrumentation spans inside (a background loop's idle polling would
    otherwise be a one-statement trace every second)."""
    if _tracer is None:
        return _OFF
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    return suppress_instrumentation()


def provider() -> trace.TracerProvider | None:
    """The provider in use, or None when tracing is off."""
    return _provider


def use(tracer_provider: trace.TracerProvider) -> None:
    """Trace with this provider from now on: our spans, and every asyncpg statement."""
    global _tracer, _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    instrumentor.instrument(tracer_provider=tracer_provider)
    _provider = tracer_provider
    _tracer = tracer_provider.get_tracer("parley")


def reset() -> None:
    """Tracing off again (asyncpg uninstrumented)."""
    global _tracer, _provider
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

    instrumentor = AsyncPGInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
    _tracer = _provider = None


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    if (env.get("OTEL_SDK_DISABLED") or "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def configure(environ: Mapping[str, str] | None = None) -> bool:
    """Tracing on, exporting over OTLP/HTTP, when the environment asks for it (once
    per process; a second call keeps the provider in use). Returns whether it is on."""
    if _provider is not None:
        return True
    if not wanted(environ):
        return False
    env = os.environ if environ is None else environ
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES win over this default.
    named = {} if env.get("OTEL_SERVICE_NAME") or "service.name=" in env.get("OTEL_RESOURCE_ATTRIBUTES", "") else {
        "service.name": "parley"
    }
    tracer_provider: TracerProvider = TracerProvider(resource=Resource.create(named))
    tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(tracer_provider)
    use(tracer_provider)
    log.info("tracing on: OTLP/HTTP to %s",
             env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))  # fmt: skip
    return True
