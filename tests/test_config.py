"""Configuration: example = defaults, precedence, and clear errors with exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from scxd import cli
from scxd.config import ConfigError, Settings, example_toml, load_config

EXAMPLE = Path(__file__).parents[1] / "config.example.toml"


def test_shipped_example_is_generated_from_the_models():
    assert EXAMPLE.read_text() == example_toml(), (
        "config.example.toml is stale: regenerate with `scxd check-config --example`")


def test_example_parses_to_exactly_the_defaults():
    assert load_config(EXAMPLE, environ={}) == Settings()


def test_every_key_is_documented_with_default():
    lines = EXAMPLE.read_text().splitlines()
    documented = {}
    for i, line in enumerate(lines):
        if " = " in line and not line.startswith("#"):
            comment = []
            j = i - 1
            while j >= 0 and lines[j].startswith("#"):
                comment.insert(0, lines[j])
                j -= 1
            documented[line.split(" = ")[0]] = " ".join(comment)
    tables = {line.strip("[]") for line in lines if line.startswith("[")}
    for section, value in Settings().model_dump().items():
        keys = value.keys() if isinstance(value, dict) else [section]
        for key in keys:
            if isinstance(value, dict) and isinstance(value[key], dict):
                # A nested table ([policy.network]): the table and each of its keys.
                assert f"{section}.{key}" in tables, f"[{section}.{key}] missing"
                for sub in value[key]:
                    assert sub in documented, f"{section}.{key}.{sub} missing"
                continue
            assert key in documented, f"{section}.{key} missing from the example"
            assert "default:" in documented[key], f"{section}.{key} has no documented default"
    assert "unit: s;" in documented["sample_interval"]
    assert "range: 0.1..60.0" in documented["sample_interval"]


def test_precedence_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[telemetry]\nwindow = 10.0\nsample_interval = 2.0\n[guard]\nmin_dwell = 7\n")
    s = load_config(cfg, environ={})
    assert (s.telemetry.window, s.telemetry.sample_interval, s.guard.min_dwell) == (10, 2, 7)
    s = load_config(cfg, environ={"SCXD_TELEMETRY__WINDOW": "20"})
    assert s.telemetry.window == 20 and s.telemetry.sample_interval == 2  # deep merge
    s = load_config(cfg, {"telemetry": {"window": 30.0}}, environ={"SCXD_TELEMETRY__WINDOW": "20"})
    assert s.telemetry.window == 30
    assert s.policy == Settings().policy  # untouched sections keep defaults


def test_environment_is_restored(tmp_path):
    before = dict(os.environ)
    load_config(environ={"SCXD_LOG_LEVEL": "debug"})
    assert dict(os.environ) == before


@pytest.mark.parametrize("content,expect", [
    ("[telemetry]\nbogus = 1\n", "key telemetry.bogus: unknown key"),
    ("[nosuchsection]\nx = 1\n", "key nosuchsection: unknown key"),
    ("[telemetry]\nwindow = \"long\"\n", "key telemetry.window: Input should be a valid number"),
    ("[telemetry]\nsample_interval = 0.0\n", "key telemetry.sample_interval: Input should be "
     "greater than or equal to 0.1"),
    ("[telemetry]\nringbuf_pages = 100\n", "must be a power of two"),
    ("[telemetry]\nwindow = 1.0\nsample_interval = 2.0\n", "must be ≥ sample_interval"),
    ("[metrics]\naddress = \"nohost\"\n", "expected HOST:PORT"),
    ("[telemetry\nwindow = 1\n", "invalid TOML"),
])
def test_bad_file_names_file_key_problem(tmp_path, content, expect):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_config(cfg, environ={})
    assert str(cfg) in str(err.value)
    assert expect in str(err.value)


def test_unreadable_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(tmp_path, environ={})  # a directory
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(binary, environ={})


def test_env_and_flag_errors_name_their_source():
    with pytest.raises(ConfigError, match=r"environment variable SCXD_GUARD__MIN_DWELL: key "
                       r"guard\.min_dwell"):
        load_config(environ={"SCXD_GUARD__MIN_DWELL": "soon"})
    with pytest.raises(ConfigError, match=r"command line: key telemetry\.window"):
        load_config(overrides={"telemetry": {"window": -1.0}}, environ={})


def test_check_config_cli(tmp_path, capsys):
    good = tmp_path / "good.toml"
    good.write_text("[policy]\nname = \"fixed\"\n")
    assert cli.main(["check-config", str(good)]) == 0
    out = capsys.readouterr().out
    assert 'name = "fixed"' in out and "[telemetry]" in out
    bad = tmp_path / "bad.toml"
    bad.write_text("[policy]\nname = \"oracle\"\n")
    assert cli.main(["check-config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "policy.name" in err and "'fixed'" in err


def test_bad_config_starts_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text("[telemetry]\nwindow = 0\n")
    assert cli.main(["observe", "--config", str(bad), "--count", "1"]) == 2
    assert "telemetry.window" in capsys.readouterr().err
