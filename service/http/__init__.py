"""HTTP layer: one controller per resource, thin handlers (parse, call, return)."""
