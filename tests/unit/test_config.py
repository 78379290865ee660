"""Settings read from the environment: defaults, and clear errors for bad values."""

from __future__ import annotations

import pytest

from service.config import Settings


def test_the_failed_authentication_limit_defaults_to_ten_and_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).auth_failure_limit == 10
    assert Settings.from_env({"PARLEY_AUTH_FAILURE_LIMIT": "250"}).auth_failure_limit == 250


@pytest.mark.parametrize("value", ["0", "-3", "ten", "2.5"])
def test_a_failed_authentication_limit_that_is_not_a_positive_count_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="PARLEY_AUTH_FAILURE_LIMIT must be a whole number of at least 1"):
        Settings.from_env({"PARLEY_AUTH_FAILURE_LIMIT": value})


def test_the_key_cache_time_limit_defaults_to_a_second_and_is_read_from_the_environment() -> None:
    assert Settings.from_env({}).key_cache_ttl == 1.0
    assert Settings.from_env({"PARLEY_KEY_CACHE_TTL": "3600"}).key_cache_ttl == 3600.0
    with pytest.raises(ValueError, match="PARLEY_KEY_CACHE_TTL must be between 0 and 3600 seconds"):
        Settings.from_env({"PARLEY_KEY_CACHE_TTL": "7200"})
