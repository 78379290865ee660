"""The HTTP side of tracing (service.tracing): Litestar's OpenTelemetry plugin,
only when tracing is on, and the server span named by its route.

The plugin's middleware wraps the whole app, before routing: its span starts
named by the raw path. Once routed, the request-id middleware calls `routed()`,
which renames it `POST /negotiations/{ref}/commands` (one name per route, not
per negotiation) and adds the request id (`parley.request_id`), so a trace is
found from a log line or an event's correlation_id; the request's log line
carries the trace's id (`trace_id`) in turn.
"""

from __future__ import annotations

from typing import Any

from litestar.plugins import PluginProtocol
from litestar.types import Scope

from service import tracing


def plugins() -> list[PluginProtocol]:
    """[the OpenTelemetry plugin] when tracing is on, else []."""
    provider = tracing.provider()
    if provider is None:
        return []
    from litestar.plugins.opentelemetry import OpenTelemetryConfig, OpenTelemetryPlugin

    # No `http send`/`http receive` child spans: one span per request, with the
    # SQL and domain spans inside it.
    return [OpenTelemetryPlugin(OpenTelemetryConfig(tracer_provider=provider, exclude_spans=["receive", "send"]))]


def routed(scope: Scope, request_id: str) -> None:
    """Name the current server span by the route the request took."""
    if tracing.provider() is None:
        return
    from opentelemetry import trace

    server_span: Any = trace.get_current_span()
    if not server_span.is_recording():
        return
    template = scope.get("path_template") or scope.get("path", "")
    server_span.update_name(f"{scope['method']} {template}")
    server_span.set_attribute("http.route", template)
    server_span.set_attribute("parley.request_id", request_id)


def trace_id() -> str | None:
    """The current trace's id (32 hex digits, as collectors show it), or None
    when tracing is off: the request's log line carries it."""
    if tracing.provider() is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None
