"""The journal on PostgreSQL: the read and write tests of ``test_journal_queries`` that work through
its ``journal`` fixture, run again on a throwaway PostgreSQL database (the fixture below replaces
the SQLite one for them), then what a shared database adds: writers of several threads and two
journals on one database, the month ranges on the ``at`` index, and a database lacking the
journal's migration refused."""
from __future__ import annotations

import threading
from dataclasses import replace

import pytest

from tests.test_journal_queries import (
    BASE, test_a_busy_run_is_not_a_batch_file_run, test_a_page_counts_up_to_its_bound_and_pages_as_find_consultations, test_a_full_ssin_in_the_search_finds_its_masked_patient,
    test_a_masked_number_finds_the_full_numbers_it_may_stand_for, test_a_month_that_is_not_yyyy_mm_is_refused,
    test_an_empty_journal, test_batch_runs_filters_pages_and_jobs, test_codes_of_the_consultations_that_were_not_ok,
    test_filters_combine, test_interface, test_month, test_months_present_newest_first,
    test_newest_first_is_by_insertion_not_by_date, test_no_filter_is_every_consultation_newest_first,
    test_only_ok_consultations_have_no_codes, test_outcome, test_pages, test_per_month_and_outcome,
    test_percent_and_underscore_in_the_text_are_plain_characters,
    test_text_is_found_in_each_searched_column_ignoring_case, test_the_rows_are_the_journal_columns, year)
from unified_messaging.database import DatabaseError, connect, migrate_store
from unified_messaging.database.migrations import migrate
from unified_messaging.database.schema import MIGRATIONS
from unified_messaging.journal import Journal
from unified_messaging.monitoring.health import journal_problem

pytestmark = pytest.mark.postgres

__all__ = [  # collected here again, on PostgreSQL
    "year", "test_a_page_counts_up_to_its_bound_and_pages_as_find_consultations", "test_a_busy_run_is_not_a_batch_file_run", "test_a_full_ssin_in_the_search_finds_its_masked_patient",
    "test_a_masked_number_finds_the_full_numbers_it_may_stand_for", "test_a_month_that_is_not_yyyy_mm_is_refused",
    "test_an_empty_journal", "test_batch_runs_filters_pages_and_jobs",
    "test_codes_of_the_consultations_that_were_not_ok", "test_filters_combine", "test_interface", "test_month",
    "test_months_present_newest_first", "test_newest_first_is_by_insertion_not_by_date",
    "test_no_filter_is_every_consultation_newest_first", "test_only_ok_consultations_have_no_codes",
    "test_outcome", "test_pages", "test_per_month_and_outcome",
    "test_percent_and_underscore_in_the_text_are_plain_characters",
    "test_text_is_found_in_each_searched_column_ignoring_case", "test_the_rows_are_the_journal_columns"]


@pytest.fixture()
def journal(migrated_postgres_url, tmp_path):
    j = Journal.open(migrated_postgres_url, tmp_path / "journal.sqlite")
    assert j.db.engine == "postgresql" and j.path is None
    yield j
    j.close()
    assert not (tmp_path / "journal.sqlite").exists()  # nothing went to SQLite


def test_writers_of_several_threads_lose_nothing_and_a_second_journal_sees_every_row(journal,
                                                                                     migrated_postgres_url,
                                                                                     tmp_path):
    def write(start: int) -> None:
        for i in range(start, start + 25):
            journal.record_consultation(replace(BASE, reference=f"R{i}"))

    threads = [threading.Thread(target=write, args=(n * 25,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    other = Journal.open(migrated_postgres_url, tmp_path / "other-node" / "journal.sqlite")
    try:
        assert other.count("consultations") == 200
        assert {row["reference"] for row in other.find_consultations(limit=500)} == {f"R{i}" for i in range(200)}
        new_id = other.record_consultation(replace(BASE, reference="FROM-OTHER"))
        assert journal.consultation(new_id)["reference"] == "FROM-OTHER"
        assert journal_problem(other) is None and journal_problem(journal) is None
    finally:
        other.close()


def test_a_month_is_a_range_of_the_at_index(year):
    """The text columns compare as bytes (COLLATE "C"), so ``at >= :start AND at < :end`` can use the
    index whatever the cluster's locale (the planner is told to avoid a scan of the tiny table)."""
    where, args = year._consultation_filters(None, "2026-12", None, None)
    with year.db.transaction() as tx:
        tx.execute("SET LOCAL enable_seqscan = off")
        plan = " | ".join(row["QUERY PLAN"] for row in tx.query(f"EXPLAIN SELECT * FROM consultations {where}",
                                                                 args))
    assert "consultations_at" in plan or "consultations_outcome_at" in plan, plan
    assert year.count_consultations(month="2026-12") == 5


def test_a_database_migrated_by_the_previous_release_is_refused_until_db_migrate(postgres_url, tmp_path):
    previous = connect(postgres_url, tmp_path)
    try:
        migrate(previous, MIGRATIONS[:2])  # Mybox and the secure space: what the previous release made
    finally:
        previous.close()
    with pytest.raises(DatabaseError, match=r"lacks migrations 3, 4 \(the journal .*'unified-messaging db migrate'"):
        Journal.open(postgres_url, tmp_path / "journal.sqlite")
    between = connect(postgres_url, tmp_path)
    try:
        migrate(between, MIGRATIONS[:3])  # the release before the working folder's unique index
    finally:
        between.close()
    with pytest.raises(DatabaseError, match=r"lacks migration 4 \(invoicing: one row per file of the working"):
        Journal.open(postgres_url, tmp_path / "journal.sqlite")
    current = connect(postgres_url, tmp_path)
    try:
        assert [m.number for m in migrate_store(current)] == [4]
    finally:
        current.close()
    Journal.open(postgres_url, tmp_path / "journal.sqlite").close()
