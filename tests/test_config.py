"""Configuration: a flag wins over its LIVECOMMENTS_* variable, which wins over the default."""

import json

import httpx
import pytest

from livecomments.config import Config, parse_config
from tests.server_process import ServerProcess, wait_until


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


def test_json_logs_have_one_object_per_request(tmp_path):
    with ServerProcess(f"sqlite:///{tmp_path}/c.db", "--log-format", "json") as running:
        assert httpx.post(running.url + "/comments/v", json={"message": "hi"}).status_code == 201
        assert httpx.get(running.url + "/nope").status_code == 404
        wait_until(lambda: '"status": 404' in running.log())
    lines = [json.loads(line) for line in running.log().splitlines()]
    requests = [line for line in lines if line["message"] == "request"]
    assert requests[0] | {"time": None, "duration_ms": None} == {
        "time": None,
        "level": "INFO",
        "logger": "livecomments.access",
        "message": "request",
        "method": "POST",
        "path": "/comments/v",
        "status": 201,
        "duration_ms": None,
        "remote": "127.0.0.1",
    }
    assert requests[1]["level"] == "WARNING"
    assert requests[1]["status"] == 404


@pytest.mark.parametrize("sources", ["'self'; script-src *", "'self'\r\nX-Evil: 1", ""])
def test_frame_ancestors_cannot_smuggle_directives_or_headers(sources, capsys):
    with pytest.raises(SystemExit):
        parse_config(["--frame-ancestors", sources], {})
    assert "--frame-ancestors" in capsys.readouterr().err


def test_frame_ancestors_take_a_list_of_sites():
    sources = "'self' https://site.example https://*.cdn.example:8443"
    assert parse_config(["--frame-ancestors", sources], {}).frame_ancestors == sources
