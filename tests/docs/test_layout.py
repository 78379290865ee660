"""docs/architecture.md's Layout names every module of domain/, projections/ and
service/ in the row of its folder (issue 12: "README's layout section and the farm
of modules match"), so a module added, moved or renamed without the page fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("domain", "projections", "service")


def layout_rows() -> dict[str, str]:
    text = (ROOT / "docs" / "architecture.md").read_text()
    section = text.split("## Layout", 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        found = re.match(r"\| `([^`]+)`( \(top level\))? \|", line)
        if found:
            rows[found.group(1)] = line
    return rows


def row_for(folder: str, rows: dict[str, str]) -> str | None:
    # A module is named in the row of its folder, or of the nearest folder above it.
    parts = folder.split("/")
    for end in range(len(parts), 0, -1):
        key = "/".join(parts[:end]) + "/"
        if key in rows:
            return rows[key]
    return None


def test_the_layout_names_every_module() -> None:
    rows = layout_rows()
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT)
            if path.name == "__init__.py" or "migrations" in relative.parts:
                continue
            if path.name == "__main__.py":
                continue
            row = rows.get(str(relative)) or row_for(str(relative.parent), rows)
            named = row is not None and re.search(rf"`[^`]*\b{re.escape(path.stem)}(\.py)?\b[^`]*`", row)
            if not named:
                missing.append(str(relative))
    assert not missing, f"docs/architecture.md's Layout does not name: {', '.join(missing)}"
