"""Every curated mutant (tests/mutants.py) still applies to the code it breaks.

CI runs the mutants after the suite; one whose code has moved fails that run.
Checked here too, so the suite says so at once, with the file to update.
"""

from __future__ import annotations

import pytest

from tests.mutants import MUTANTS, ROOT


@pytest.mark.parametrize("mutant", MUTANTS, ids=[m.name for m in MUTANTS])
def test_the_mutant_finds_exactly_the_code_it_breaks(mutant) -> None:  # noqa: ANN001
    source = (ROOT / mutant.path).read_text()
    assert source.count(mutant.original) == 1, (
        f"mutant {mutant.name!r} no longer applies to {mutant.path}: update tests/mutants.py with the code"
    )
    for test in mutant.tests:
        assert (ROOT / test.split("::")[0]).exists(), f"mutant {mutant.name!r} names a missing test file {test}"
