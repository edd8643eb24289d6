"""With ``[database] url`` set, the operations that only know the data folder's SQLite files refuse,
saying why and what to use instead: a backup would miss the PostgreSQL rows, a restore would not
put them back, and a master key rotation would leave them sealed under the key it deletes."""
from __future__ import annotations

import subprocess

import pytest

from tests.support import CLI


@pytest.mark.parametrize("arguments, instead", [
    (["backup", "{tmp}/backup"], "pg_dump"),
    (["restore", "{tmp}"], "pg_restore"),
    (["secret", "rotate-master-key"], "stay sealed under the old key"),
])
def test_sqlite_only_operations_are_refused_on_a_postgresql_install(tmp_path, arguments, instead):
    data = tmp_path / "um-data"
    data.mkdir()
    (data / "master.key").write_bytes(b"kept as it is\n")
    config = tmp_path / "um.toml"
    config.write_text(f'[data]\nfolder = "{data}"\n[database]\nurl = "postgresql://um@127.0.0.1:1/um"\n',
                      encoding="utf-8")
    command = [CLI, *[a.format(tmp=tmp_path) for a in arguments], "--config", str(config)]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "[database] url" in result.stderr and instead in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert (data / "master.key").read_bytes() == b"kept as it is\n"  # nothing touched
    assert not (tmp_path / "backup").exists()
