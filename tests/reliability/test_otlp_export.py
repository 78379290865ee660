"""`parley serve` with OTEL_EXPORTER_OTLP_ENDPOINT set exports its traces over
OTLP/HTTP: a receiver in this test (the OTLP protobuf messages, decoded with the
opentelemetry-proto package) gets the request's server span and our spans."""

from __future__ import annotations

import http.server
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from domain.example import OPENED
from tests.reliability.conftest import free_port, start_serve, wait_ready


class _Receiver(http.server.BaseHTTPRequestHandler):
    received: list[ExportTraceServiceRequest]

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        body = self.rfile.read(int(self.headers["Content-Length"]))
        message = ExportTraceServiceRequest()
        message.ParseFromString(body)
        if self.path == "/v1/traces":
            self.received.append(message)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[ExportTraceServiceRequest]]]:
    received: list[ExportTraceServiceRequest] = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()


def _spans(received: list[ExportTraceServiceRequest]) -> list[tuple[dict, object]]:
    found = []
    for message in list(received):
        for resource_spans in message.resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                found.extend((resource, span) for span in scope_spans.spans)
    return found


def test_serve_exports_a_requests_trace_over_otlp_http(database_url, tmp_path, keys, processes, receiver):
    endpoint, received = receiver
    port = free_port()
    log = tmp_path / "serve.log"
    process = start_serve(database_url, port, log, PARLEY_DATA_DIR=str(tmp_path), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
                          OTEL_BSP_SCHEDULE_DELAY="100")  # fmt: skip
    processes.append(process)
    base = f"http://127.0.0.1:{port}"
    wait_ready(base, process, log)
    request_id = str(uuid.uuid4())
    response = httpx.post(f"{base}/negotiations", json=OPENED,
                          headers=keys.headers("recorder", **{"X-Request-Id": request_id}), timeout=30)  # fmt: skip
    assert response.status_code == 201, response.text
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        spans = _spans(received)
        servers = [s for _, s in spans if any(a.key == "parley.request_id" and a.value.string_value == request_id
                                               for a in s.attributes)]  # fmt: skip
        if servers:
            [server] = servers
            in_trace = {s.name for _, s in spans if s.trace_id == server.trace_id}
            if {"parley.decide", "parley.append"} <= in_trace:
                break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no trace of the request within 60 s; got {[s.name for _, s in _spans(received)]}; "
                             f"{log.read_text(errors='replace')[-2000:]}")  # fmt: skip
    assert server.name == "POST /negotiations"
    assert "INSERT" in in_trace or "SELECT" in in_trace, in_trace  # asyncpg's statements
    assert all(resource.get("service.name") == "parley" for resource, _ in spans)
