"""Settings come from flags, then VERBAL_* variables, then the TOML file, then defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from verbal.config import Settings


def test_defaults_run_on_embedded_parts() -> None:
    settings = Settings()
    assert settings.database_url.startswith("sqlite")
    assert settings.sandbox_enabled and settings.sandbox_prefixes == ["+1555"]
    assert settings.base_url == "http://127.0.0.1:8080"


def test_toml_then_environment_then_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "verbal.toml"
    config.write_text(
        'port = 9000\nhost = "0.0.0.0"\nsandbox_prefixes = ["+1555", "+4477009"]\n'
        "webhook_max_attempts = 3\n"
    )
    monkeypatch.setenv("VERBAL_CONFIG", str(config))
    from_file = Settings()
    assert (from_file.port, from_file.host, from_file.webhook_max_attempts) == (9000, "0.0.0.0", 3)
    assert from_file.sandbox_prefixes == ["+1555", "+4477009"]

    monkeypatch.setenv("VERBAL_PORT", "9100")
    assert Settings().port == 9100
    assert Settings(port=9200).port == 9200


def test_secrets_are_masked_in_reprs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERBAL_BOOTSTRAP_AUTH_TOKEN", "topsecret1234")
    settings = Settings()
    assert settings.bootstrap_auth_token.get_secret_value() == "topsecret1234"
    assert "topsecret1234" not in repr(settings)


def test_smsc_esmes_from_toml_are_checked_and_keep_passwords_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "verbal.toml"
    config.write_text(
        'smsc_enabled = true\n[[smsc_esmes]]\nsystem_id = "kannel"\npassword = "pwd12345"\n'
        'numbers = ["+155577*"]\n'
    )
    monkeypatch.setenv("VERBAL_CONFIG", str(config))
    [esme] = Settings().smsc_esmes
    assert (esme.system_id, esme.account_sid, esme.numbers) == ("kannel", "", ["+155577*"])
    assert "pwd12345" not in repr(Settings())

    refusals = {
        "123456789": "at most 8 characters",  # SMPP 3.4's bind has room for 8
        "пароль": "Latin-1",
        "": "at least 1",
    }
    for password, reason in refusals.items():
        with pytest.raises(ValueError, match=reason) as refused:
            Settings(smsc_esmes=[{"system_id": "kannel", "password": password}])
        assert password not in str(refused.value) or not password
    twice = [{"system_id": "kannel", "password": "a"}, {"system_id": "kannel", "password": "b"}]
    with pytest.raises(ValueError, match="system_ids must be unique; repeated: kannel"):
        Settings(smsc_esmes=twice)
