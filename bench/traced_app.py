"""The shipped app with tracing on, exporting to the OpenTelemetry SDK's in-memory
exporter behind the batch processor an OTLP deployment uses (bench.tracing): the
cost of making and handing over the spans, without a network or a collector.

The exporter is emptied past 10,000 spans so a long run does not hold them all;
the number it got goes to stderr when the process ends.
"""

from __future__ import annotations

import atexit
import sys

from litestar import Litestar
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service import tracing
from service.http import app


class _Emptied(InMemorySpanExporter):
    exported = 0

    def export(self, spans) -> SpanExportResult:  # type: ignore[no-untyped-def]
        result = super().export(spans)
        _Emptied.exported += len(spans)
        if len(self.get_finished_spans()) > 10_000:
            self.clear()
        return result


def create_app_from_env() -> Litestar:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Emptied()))
    tracing.use(provider)
    atexit.register(lambda: print(f"bench.traced_app: {_Emptied.exported} spans exported", file=sys.stderr))
    return app.create_app_from_env()
