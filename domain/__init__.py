"""Parley's domain: pure (no I/O, no clock, no randomness).

Modules, by the words of the contract:

* ``records``     -- ``Recorded`` (an event as stored) and ``Source``
* ``events``      -- stored payloads per event type, ``encode_data`` / ``decode_data``
* ``commands``    -- what clients send: the ``Command`` tagged union, ``OpenNegotiation``, ``CommandBatch``
* ``decide``      -- ``open_negotiation``, ``decide``, ``target_of``, ``CommandMeta``, ``NewEvent``, ``recorded``
* ``negotiation`` / ``issue`` -- the eventsourcing aggregates (write-side state)
* ``parties``, ``rounds``, ``lifecycle``, ``issues``, ``proposals``, ``items``, ``corrections``
                  -- the rules, one pure function per command type
* ``status``      -- THE fold: ``fold_issue``, ``fold_negotiation``, ``IssueFold``, ``select_known``
* ``timeline``    -- ``describe``: one sentence per fact
* ``world_time``  -- dates and instants in the world, and how they compare
* ``errors``      -- ``DomainError`` and one subclass per refusal
* ``example``     -- the DESIGN.md news report as commands
"""
