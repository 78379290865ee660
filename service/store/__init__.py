"""The event store: the only code that reads or writes the events and streams tables."""
