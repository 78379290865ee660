"""The event shapes share one EventMeta: the served envelope and the export line
carry every one of its fields as the stored event has it (service.store.envelope)."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec

from service.store.canonical import ImportClaim
from service.store.envelope import envelope, exported
from service.store.events import EventMeta, StoredEvent


def stored() -> StoredEvent:
    # Every field set to something other than its default.
    return StoredEvent(
        id=uuid.uuid4(), stream_id=uuid.uuid4(), stream_type="issue", type="statement.made", schema_version=2,
        occurred_on="2022-03-16", recorded_by="recorder", recorded_at=dt.datetime(2026, 12, 3, 18, 0, tzinfo=dt.UTC),
        negotiation_id=uuid.uuid4(), claimed_by=("UA", "RU"), source={"url": "https://example.org/a"}, note="n",
        correlation_id=uuid.uuid4(), causation_id=uuid.uuid4(),
        import_claim=ImportClaim(hash="ab" * 32, recorded_at="2022-03-16T00:00:00.000000Z", recorded_by="old"),
        position=7, txid=1234, version=3, body=b'{"data":{"x":1}}', data=b'{"x":1}', hash=bytes(range(32)),
    )


def test_the_envelope_and_the_export_line_carry_every_eventmeta_field() -> None:
    event = stored()
    for shape in (envelope(event), exported(event)):
        for name in EventMeta.__struct_fields__:
            expected = list(event.claimed_by) if name == "claimed_by" else getattr(event, name)
            assert getattr(shape, name) == expected, name
        assert (shape.position, shape.version, shape.hash, shape.checkpoint) == (7, 3, bytes(range(32)).hex(), "1234.7")
        assert msgspec.json.decode(msgspec.json.encode(shape))["data"] == {"x": 1}
    assert exported(event).body == '{"data":{"x":1}}'
