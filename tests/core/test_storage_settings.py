"""storage.url: SQLite or PostgreSQL, checked at start-up with errors that name the key."""

from __future__ import annotations

import pytest

from core.settings import ConfigError, load_settings


def test_a_postgresql_url_on_loopback_runs_the_embedded_server() -> None:
    s = load_settings(environ={}, overrides={"storage.url": "postgresql://ops@127.0.0.1:5544/news"})
    assert s.storage.kind == "postgresql" and s.storage.embedded_postgres
    assert (s.storage.postgres_port, s.storage.postgres_database, s.storage.postgres_user) == (5544, "news", "ops")
    remote = load_settings(environ={}, overrides={"storage.url": "postgresql://ops:pw@db.internal:5432/news"})
    assert not remote.storage.embedded_postgres
    off = load_settings(environ={"NEWSWIRE__STORAGE__POSTGRES_EMBEDDED": "false"},
                        overrides={"storage.url": "postgresql://ops@localhost:5544/news"})
    assert not off.storage.embedded_postgres


def test_the_default_store_is_sqlite() -> None:
    s = load_settings(environ={})
    assert s.storage.kind == "sqlite" and not s.storage.embedded_postgres
    assert str(s.sqlite_path) == s.storage_url.removeprefix("sqlite:///")


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://h/db", "storage.url: 'mysql://h/db' does not match"),
    ("postgresql://h:70000/db", "storage.url: 'postgresql://h:70000/db': the port"),
    ("postgresql:///db", "storage.url: 'postgresql:///db': a PostgreSQL URL needs a host"),
    ("postgresql://h:5432/", "storage.url: 'postgresql://h:5432/': a PostgreSQL URL needs one database"),
])
def test_a_bad_storage_url_is_refused_naming_the_key(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match="newswire.yaml: " + message.replace("(", r"\(").replace(".", r"\.")):
        load_settings(environ={}, overrides={"storage.url": url})
