"""The folders page says where the journal is: its SQLite file, or the PostgreSQL URL with its
password masked (never the unused ``journal.sqlite`` path of the data folder)."""
from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.test_web_pages import text_of
from tests.web_support import login, start_mybox

ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("engine", ENGINES)
def test_the_folders_page_shows_where_the_journal_is(engine, request, tmp_path):
    url = request.getfixturevalue("migrated_postgres_url") if engine == "postgresql" else ""
    stack = start_mybox(tmp_path, database={"url": url})
    try:
        session = login(stack, "admin")
        page = session.get(stack.url("/admin/folders"))
        session.close()
        assert page.status_code == 200
        shown = text_of(page.text)
        if engine == "postgresql":
            parts = urlsplit(url)
            masked = f"postgresql://{parts.username}:***@{parts.hostname}:{parts.port}{parts.path}"
            assert f"Journal PostgreSQL {masked}" in shown, shown
            assert parts.password not in page.text and "journal.sqlite" not in page.text
        else:
            assert f"Journal SQLite {stack.gateway.config.journal_path}" in shown, shown
    finally:
        stack.gateway.stop()
