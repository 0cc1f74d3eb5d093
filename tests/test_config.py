"""Configuration: a flag wins over its LIVECOMMENTS_* variable, which wins over the default."""

import pytest

from livecomments.config import Config, parse_config


def test_defaults_are_the_embedded_service():
    config = parse_config([], {})
    assert config == Config()
    assert config.port == 8888
    assert config.store == "sqlite:///livecomments.db"
    assert config.bus == "memory://"


def test_environment_variables_set_options():
    config = parse_config([], {"LIVECOMMENTS_PORT": "9000", "LIVECOMMENTS_STORE": "sqlite:///x.db"})
    assert config.port == 9000
    assert config.store == "sqlite:///x.db"


def test_flags_win_over_environment():
    config = parse_config(["--port", "9100", "--bus", "memory://"], {"LIVECOMMENTS_PORT": "9000"})
    assert config.port == 9100


def test_a_bad_value_is_refused_with_usage(capsys):
    with pytest.raises(SystemExit):
        parse_config([], {"LIVECOMMENTS_PORT": "eighty"})
    assert "invalid int value" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "value"), [("--ring-size", "0"), ("--viewer-buffer", "1000")])
def test_settings_that_could_never_deliver_are_refused(flag, value, capsys):
    with pytest.raises(SystemExit):
        parse_config([flag, value], {})
    assert flag in capsys.readouterr().err
