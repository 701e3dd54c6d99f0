"""Settings: flags over variables over defaults, one-line errors naming the source, URLs fit for a log."""

from __future__ import annotations

import pytest

from lrserve.settings import Settings, SettingsError, flags_as_env, masked_url


def test_without_flags_or_variables_the_settings_are_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()
    assert (Settings().workers, Settings().shutdown_timeout) == (1, 10.0)


def test_a_flag_takes_precedence_over_its_variable_which_takes_precedence_over_the_default() -> None:
    env = {"LRSERVE_PORT": "9000", "LRSERVE_WORKERS": "3", "LRSERVE_SHUTDOWN_TIMEOUT": "4.5"}
    settings = Settings.from_env(env, {"port": "9100", "workers": None, "host": None})
    assert (settings.port, settings.workers, settings.shutdown_timeout) == (9100, 3, 4.5)


def test_flags_travel_to_another_process_as_the_variables_it_reads_back() -> None:
    flags = {"port": "9100", "database_url": "sqlite:///x.db", "workers": "2", "shutdown_timeout": "3",
             "host": None}
    exported = flags_as_env(flags)
    assert exported == {"LRSERVE_PORT": "9100", "LRSERVE_DATABASE_URL": "sqlite:///x.db",
                        "LRSERVE_WORKERS": "2", "LRSERVE_SHUTDOWN_TIMEOUT": "3"}
    assert Settings.from_env({"LRSERVE_PORT": "1", **exported}) == Settings.from_env({"LRSERVE_PORT": "1"}, flags)


@pytest.mark.parametrize(
    ("env", "flags", "message"),
    [
        ({}, {"workers": "0"}, "--workers must be an integer >= 1 (received '0')"),
        ({"LRSERVE_WORKERS": "1.5"}, {}, "LRSERVE_WORKERS must be an integer >= 1 (received '1.5')"),
        ({"LRSERVE_PORT": "abc"}, {}, "LRSERVE_PORT must be an integer from 1 to 65535 (received 'abc')"),
        ({}, {"shutdown_timeout": "nan"}, "--shutdown-timeout must be a number of seconds >= 0 (received 'nan')"),
        ({"LRSERVE_MAX_BODY_BYTES": "lots"}, {}, "LRSERVE_MAX_BODY_BYTES must be an integer >= 1 (received 'lots')"),
        ({"LRSERVE_CACHE_SECONDS": "-1"}, {}, "LRSERVE_CACHE_SECONDS must be a number of seconds >= 0 (received '-1')"),
    ],
)
def test_a_value_that_cannot_be_used_is_refused_naming_its_flag_or_variable(
    env: dict[str, str], flags: dict[str, str], message: str,
) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env(env, flags)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://user:hunter2@db.example:5432/lr", "postgresql://user:***@db.example:5432/lr"),
        ("postgresql://user:p%40ss@db/lr?sslmode=require", "postgresql://user:***@db/lr?sslmode=require"),
        ("postgresql://user@db/lr?password=hunter2&sslmode=require",
         "postgresql://user@db/lr?password=***&sslmode=require"),
        ("postgresql://user@db/lr", "postgresql://user@db/lr"),
        ("sqlite:////data/lrserve.db", "sqlite:////data/lrserve.db"),
        ("sqlite:///./lrserve.db", "sqlite:///./lrserve.db"),
    ],
)
def test_a_database_url_is_logged_with_its_password_masked(url: str, shown: str) -> None:
    assert masked_url(url) == shown
