"""Config: defaults, TOML, environment overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamscale.config import Config, ConfigError, load


def test_defaults_need_no_file() -> None:
    config = load(None, environ={})
    assert config == Config()
    assert config.storage_url == "sqlite:///var/streamscale.db"
    assert config.gateway.port not in {5432, 6379, 4222, 5672, 3306, 1883}


def test_toml_then_env(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('data_dir = "/srv/ss"\n[gateway]\nport = 9000\nhost = "0.0.0.0"\n')
    config = load(path, environ={"STREAMSCALE_GATEWAY__PORT": "9100",
                                 "STREAMSCALE_AUTH__ACCESS_TTL_S": "600"})
    assert config.data_dir == Path("/srv/ss")
    assert config.gateway.port == 9100 and config.gateway.host == "0.0.0.0"
    assert config.auth.access_ttl_s == 600


def test_config_file_from_env(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[media]\nrtmp_port = 11935\n")
    assert load(None, environ={"STREAMSCALE_CONFIG": str(path)}).media.rtmp_port == 11935


@pytest.mark.parametrize(("text", "env", "message"), [
    ("[gateway]\nprot = 1\n", {}, "gateway.prot: unknown key"),
    ("[gateway]\nport = 'x'\n", {}, "gateway.port: expected int"),
    ("[gateway]\nport = 99999\n", {}, "gateway.port: must be a TCP port"),
    ("[nope]\n", {}, "nope: unknown key"),
    ("gateway = 3\n", {}, "gateway: expected a table"),
    ("", {"STREAMSCALE_GATEWAY__PORT": "eighty"}, "gateway.port: expected int"),
    ("", {"STREAMSCALE_STORAGE__URL": "mysql://x"}, "storage.url"),
    ("", {"STREAMSCALE_GATEWAY__TRUST_FORWARDED_FOR": "maybe"}, "trust_forwarded_for"),
    ("[gateway\n", {}, "not valid TOML"),
])
def test_errors_name_the_key(tmp_path: Path, text: str, env: dict[str, str],
                             message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")) as e:
        load(path, environ=env)
    assert str(path) in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load(tmp_path / "missing.toml", environ={})


def test_frozen() -> None:
    config = Config()
    with pytest.raises(AttributeError):
        config.log_level = "DEBUG"  # type: ignore[misc]


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=8), max_size=4))
def test_env_garbage_is_config_error_or_ignored(env: dict[str, str]) -> None:
    prefixed = {f"STREAMSCALE_{k}": v for k, v in env.items()}
    try:
        load(None, environ=prefixed)
    except ConfigError:
        pass
