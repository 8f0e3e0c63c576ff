"""Database connection strings and errors: passwords quoted, never in a message."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from chemwatch.ports import free_port
from common.database import DatabaseUnavailable, connect, redact
from common.settings import DatabaseSettings

ODD_PASSWORD = "a b'c\\d\"e=f"


def test_conninfo_quotes_a_password_with_spaces_quotes_and_backslashes() -> None:
    db = DatabaseSettings(password=ODD_PASSWORD, db_schema="plant_a")
    parsed = conninfo_to_dict(db.conninfo())
    assert parsed["password"] == ODD_PASSWORD
    assert parsed["options"] == "-c search_path=plant_a,public"
    assert (parsed["host"], parsed["port"], parsed["user"]) == ("127.0.0.1", "15432", "chemwatch")


def test_describe_names_the_target_but_not_the_password() -> None:
    db = DatabaseSettings(host="db.example", port=5433, dbname="cw", user="svc", password="pw-9x")
    text = db.describe()
    assert "db.example:5433" in text
    assert "'cw'" in text
    assert "'svc'" in text
    assert "pw-9x" not in text


def test_redact_masks_the_password_and_keeps_one_line() -> None:
    db = DatabaseSettings(password="pw-9x")
    assert redact('bad "pw-9x"\n  near here', db) == 'bad "**********" near here'


def test_failed_connect_names_host_port_db_user_not_the_password() -> None:
    port = free_port()  # nobody listens there
    db = DatabaseSettings(port=port, dbname="plantdb", user="svc", password=ODD_PASSWORD)
    with pytest.raises(DatabaseUnavailable) as caught:
        connect(db)
    text = str(caught.value)
    assert f"127.0.0.1:{port}" in text
    assert "'plantdb'" in text
    assert "'svc'" in text
    assert ODD_PASSWORD not in text
    assert "\n" not in text
    assert isinstance(caught.value.__cause__, psycopg.OperationalError)
