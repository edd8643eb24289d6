import re
import tomllib
from pathlib import Path

import pytest

from unified_messaging.config import Config, ConfigError, config_from_dict, load_config

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_FILE = ROOT / "conf" / "unified-messaging.toml"


def test_the_documented_file_equals_the_built_in_defaults():
    loaded = load_config(DEFAULT_FILE)
    defaults = Config()
    for section in ("server", "data", "upstream", "simulator", "licence", "identity", "journal", "folders", "invoicing", "securespace", "batch", "web", "logging"):
        assert getattr(loaded, section) == getattr(defaults, section), section


def test_every_key_in_the_documented_file_has_a_comment():
    lines = DEFAULT_FILE.read_text().splitlines()
    for i, line in enumerate(lines):
        if re.match(r"^[a-z_]+ = ", line):
            assert lines[i - 1].startswith("#"), f"key without explanation: {line}"
    raw = tomllib.loads(DEFAULT_FILE.read_text())
    for section, cls_value in vars(Config()).items():
        if section == "source":
            continue
        assert set(raw[section]) == set(vars(cls_value)), section


@pytest.mark.parametrize("raw, words", [
    ({"server": {"port": 70000}}, ["[server] port", "70000", "0 to 65535"]),
    ({"server": {"port": "80"}}, ["[server] port", "'80'", "whole number"]),
    ({"upstream": {"mode": "live"}}, ["[upstream] mode", "'live'", "'simulator', 'remote'"]),
    ({"server": {"prot": 1}}, ["[server] prot", "not a known key", "port"]),
    ({"serveur": {}}, ["[serveur]", "not a known section"]),
    ({"server": {"public_base_url": "um.example.be"}}, ["public_base_url", "http://"]),
    ({"upstream": {"timeout_seconds": 0}}, ["timeout_seconds", "greater than 0"]),
    ({"batch": {"jobs": "batch/batch.properties"}}, ["[batch] jobs", "'batch/batch.properties'", "list of strings"]),
    ({"batch": {"jobs": [1]}}, ["[batch] jobs", "[1]", "list of strings"]),
    ({"folders": {"max_parallel": 0}}, ["[folders] max_parallel", "greater than 0"]),
])
def test_wrong_values_name_the_key_the_value_and_what_is_expected(raw, words):
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    for word in words:
        assert word in str(caught.value)


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)


def test_overrides_are_checked():
    config = Config().replace("server", port=9000)
    assert config.server.port == 9000
    with pytest.raises(ConfigError, match="port"):
        Config().replace("server", port=-1)


def test_data_folder_and_journal_default(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config()
    assert config.data_folder == tmp_path / "um-data"
    assert config.journal_path == tmp_path / "um-data" / "journal.sqlite"


def test_folders_and_batch_jobs(tmp_path):
    config = config_from_dict({"data": {"folder": str(tmp_path)}, "batch": {"jobs": ["a.properties", "b.properties"]}})
    assert config.batch.jobs == ("a.properties", "b.properties")
    assert config.insurability_root == tmp_path / "insurability"
    config = config_from_dict({"folders": {"insurability_root": str(tmp_path / "lab")}})
    assert config.insurability_root == tmp_path / "lab"


def test_workers_zero_means_one_per_core():
    import os

    assert config_from_dict({"server": {"workers": 0}}).server.effective_workers == (os.cpu_count() or 1)
    assert config_from_dict({"server": {"workers": 3}}).server.effective_workers == 3
    with pytest.raises(ConfigError, match="workers"):
        config_from_dict({"server": {"workers": -1}})
