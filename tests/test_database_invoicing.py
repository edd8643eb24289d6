"""The invoicing state on PostgreSQL: the store tests of ``test_invoicing_queries`` (through its
``journal`` fixture) and pipeline tests of ``test_invoicing_pipeline`` (real folders, the real
platform) run again on a throwaway PostgreSQL database, then what a shared database adds: a TAck
or a feedback message recorded by four nodes at once is recorded once (the status never going
back), and the metrics and the health backlog count the invoicing state there. A real gateway on
PostgreSQL: test_database_gateway.py."""
from __future__ import annotations

import threading

import pytest

from tests.test_database_journal import journal
from tests.test_invoicing_pipeline import (
    pipeline, test_a_good_file_goes_from_ok_to_done_with_every_feedback_in_received,
    test_a_refusal_counts_its_errors_for_the_error_categories,
    test_a_settled_file_shows_its_amounts_and_each_feedback_its_error_counts,
    test_the_same_file_dropped_twice_is_sent_once)
from tests.test_invoicing_queries import (
    claim, clock, poller, store, test_a_post_begins_once_and_a_working_file_is_recorded_once,
    test_a_message_that_cannot_be_read_is_stored_as_before_without_counts,
    test_a_settlement_sets_the_amounts_and_the_payment_references,
    test_error_categories_sum_the_period_and_can_keep_to_some_codes,
    test_error_slots_are_counted_per_letter_and_error_zones_as_zone,
    test_every_status_filter_finds_its_files_and_counts_them, test_feedback_delays_count_from_the_success_tack,
    test_months_and_statuses_per_month, test_one_feedback_and_one_tack_by_id, test_pages_cover_every_file_once,
    test_percent_underscore_and_backslash_are_taken_literally, test_real_refusals_add_up_in_the_error_categories,
    test_real_settlements_set_the_file_amounts, test_the_list_is_newest_first_with_every_column,
    test_the_month_filter_takes_the_whole_month_and_nothing_more,
    test_the_same_settlement_delivered_again_changes_nothing,
    test_the_text_filter_searches_five_columns_case_insensitively, traffic)
from unified_messaging.database.engine import failures
from unified_messaging.invoicing.store import AlreadyRecorded, InvoicingStore
from unified_messaging.journal import Journal

pytestmark = pytest.mark.postgres

__all__ = [  # collected here again, on PostgreSQL
    "journal", "clock", "poller", "store", "traffic", "pipeline",  # the fixtures, the journal on PostgreSQL
    "test_a_message_that_cannot_be_read_is_stored_as_before_without_counts",
    "test_a_settlement_sets_the_amounts_and_the_payment_references",
    "test_error_categories_sum_the_period_and_can_keep_to_some_codes",
    "test_error_slots_are_counted_per_letter_and_error_zones_as_zone",
    "test_every_status_filter_finds_its_files_and_counts_them", "test_feedback_delays_count_from_the_success_tack",
    "test_months_and_statuses_per_month", "test_one_feedback_and_one_tack_by_id", "test_pages_cover_every_file_once",
    "test_percent_underscore_and_backslash_are_taken_literally", "test_real_refusals_add_up_in_the_error_categories",
    "test_real_settlements_set_the_file_amounts", "test_the_list_is_newest_first_with_every_column",
    "test_the_month_filter_takes_the_whole_month_and_nothing_more",
    "test_the_same_settlement_delivered_again_changes_nothing",
    "test_the_text_filter_searches_five_columns_case_insensitively",
    "test_a_good_file_goes_from_ok_to_done_with_every_feedback_in_received",
    "test_a_refusal_counts_its_errors_for_the_error_categories",
    "test_a_settled_file_shows_its_amounts_and_each_feedback_its_error_counts",
    "test_the_same_file_dropped_twice_is_sent_once",
    "test_a_post_begins_once_and_a_working_file_is_recorded_once"]


def _at_once(count: int, action) -> list:
    """``action(n)`` in ``count`` threads released together; their results."""
    barrier, results = threading.Barrier(count), [None] * count

    def run(n: int) -> None:
        barrier.wait()
        results[n] = action(n)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_a_tack_and_a_feedback_recorded_by_several_nodes_at_once_are_recorded_once(store, migrated_postgres_url,
                                                                                   tmp_path, clock):
    file_id = claim(store, "FAC-ONCE.txt", "20250301000077")
    nodes = [InvoicingStore(Journal.open(migrated_postgres_url, tmp_path / f"node{n}" / "journal.sqlite"),
                            clock=clock) for n in range(4)]
    try:
        added = _at_once(4, lambda n: nodes[n].record_tack(
            tack_key="tack-1", file_id=file_id, input_reference="20250301000077", reference="REF77", success=True,
            message=None, probative_name=None, file_changes={"state": "sent", "reference": "REF77"}))
        assert sorted(added) == [False, False, False, True]
        statuses = ["DONE", "ONGOING", "OK", "ONGOING"]
        _at_once(4, lambda n: nodes[n].record_feedback(
            message_key=f"msg-{n}", file_id=file_id, zone_204="20250301000077", code="9200", nip_reference=None,
            output_reference=None, received_name=f"r{n}", probative_name=None, status=statuses[n]))
        _at_once(4, lambda n: nodes[n].record_feedback(
            message_key="msg-0", file_id=file_id, zone_204="20250301000077", code="9200", nip_reference=None,
            output_reference=None, received_name="again", probative_name=None, status="NOK"))
        row = store.file(file_id)
        # the status never goes back, whatever order the nodes' transactions ran in
        assert (row["state"], row["reference"], row["status"]) == ("sent", "REF77", "DONE")
        assert len(store.tacks_for(file_id)) == 1 and len(store.feedback_for(file_id)) == 4
    finally:
        for node in nodes:
            node.journal.close()


def test_four_nodes_beginning_one_post_or_recording_one_working_file_at_once_go_on_once(
        store, migrated_postgres_url, tmp_path, clock):
    """What a node that lost its lease a moment ago and the one leading now may both try: the store lets
    one of them begin the post (the others are told not to post) and one of them record the file."""
    file_id = claim(store, "FAC-POST.txt", "20250301000078")
    nodes = [InvoicingStore(Journal.open(migrated_postgres_url, tmp_path / f"node{n}" / "journal.sqlite"),
                            clock=clock) for n in range(4)]
    try:
        began = _at_once(4, lambda n: nodes[n].start_posting(file_id))
        assert sorted(began) == [False, False, False, True]
        row = store.file(file_id)
        assert (row["state"], row["attempts"]) == ("posting", 1)

        def record(n: int) -> str:
            try:
                claim(nodes[n], "FAC-REC.txt", "20250301000079")
            except AlreadyRecorded as exc:
                assert "FAC-REC.txt.work" in str(exc)
                return "refused"
            return "recorded"

        assert sorted(_at_once(4, record)) == ["recorded", "refused", "refused", "refused"]
        assert [r["name"] for r in store.by_zone_204("20250301000079")] == ["FAC-REC.txt"]
        with pytest.raises(failures()):  # the database itself holds one row per working file
            with store.db.transaction() as tx:
                tx.execute("UPDATE invoicing_files SET work_name = 'FAC-REC.txt.work' WHERE id = :id",
                           {"id": file_id})
        assert store.file(file_id)["work_name"] == "FAC-POST.txt.work"
    finally:
        for node in nodes:
            node.journal.close()


def test_the_metrics_and_the_health_backlog_read_the_invoicing_state_in_postgresql(store, journal, tmp_path):
    from unified_messaging.monitoring.collector import GatewayCollector
    from unified_messaging.monitoring.health import Sources

    claim(store, "FAC-WAITING.txt", "20250301000081")
    done = claim(store, "FAC-SENT.txt", "20250301000082")
    store.record_tack(tack_key="tack-82", file_id=done, input_reference="20250301000082", reference="REF82",
                      success=True, message=None, probative_name=None, file_changes={"state": "sent"})
    store.record_feedback(message_key="msg-82", file_id=done, zone_204="20250301000082", code="931000",
                          nip_reference=None, output_reference=None, received_name="r", probative_name=None,
                          status="ONGOING")
    sources = Sources(journal=journal, data_folder=tmp_path, invoicing_root=tmp_path / "invoicing")
    families = {family.name: {tuple(s.labels.values()): s.value for s in family.samples}
                for family in GatewayCollector(sources).collect()}
    assert families["um_invoicing_files"] == {("WAITING",): 1, ("ONGOING",): 1}
    assert families["um_invoicing_feedback_messages"] == {("931000",): 1}
    assert sources.invoicing_waiting() == 1  # claimed, not posted; toSend is empty
