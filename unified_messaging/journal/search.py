"""The consultations' text search, served by an index instead of a scan of every row.

Mybox's search box finds a text anywhere in five columns of ``consultations`` (``LIKE '%text%'``,
ASCII case ignored, plus the GLOB a masked national number turns into: see ``journal.store``).
Without an index every search reads the whole table, twice when the page also shows how many
rows matched: about 25 ms per 100,000 rows on a quiet machine, far more under load.

On SQLite the index is an FTS5 table with the ``trigram`` tokenizer over those columns, with the
journal's table as its external content (the texts are not stored twice), kept in step by
triggers. It only narrows the rows: the store's own LIKE / GLOB conditions still decide, so the
results are exactly those of the scan. A trigram index can only look up texts of three characters
or more; a shorter text keeps the scan (and ``one_scan_page`` pays it once for the count and the
page).

On PostgreSQL the same role is played by ``pg_trgm``: ``create_postgresql_index`` below; there the
planner uses the GIN indexes for the LIKE conditions themselves, so ``narrowing`` is not needed
(what remains for the PostgreSQL journal is listed in that function's docstring).
"""
from __future__ import annotations

import logging
import re
import time
from typing import Callable, Iterable, Sequence

from unified_messaging.database import Transaction

log = logging.getLogger(__name__)

TABLE = "consultations_text"
MIN_CHARACTERS = 3  # a trigram index looks up nothing shorter
SAMPLE_ROWS = 2000  # the newest consultations that tell a common text from a rare one
COMMON_SHARE = 0.1
_MASKED_NUMBER = re.compile(r"([0-9]{6})\*{5}")  # as journal.store: 6 digits shown, 5 hidden


def create_sqlite_index(tx: Transaction, columns: Sequence[str]) -> None:
    """The FTS5 trigram index over ``consultations(columns)`` and its triggers; idempotent.

    Called inside the journal's opening write transaction: a journal made before the index gets it
    filled once from its rows (0.3 s for bench_mybox.py's 100,000 on the benchmark machine), in the same
    transaction as the table, so that a crash during the fill leaves no half-filled index. Each
    consultation journaled then costs about 85 us more CPU (inside SQLite, the GIL released).
    """
    existed = tx.query("SELECT 1 AS found FROM sqlite_master WHERE type = 'table' AND name = :name", {"name": TABLE})
    listed = ", ".join(columns)
    new, old = (", ".join(f"{row}.{column}" for column in columns) for row in ("new", "old"))
    tx.execute(f"CREATE VIRTUAL TABLE IF NOT EXISTS {TABLE} USING fts5({listed}, content='consultations', "
               "content_rowid='id', tokenize='trigram case_sensitive 0', detail=none)")
    remove = f"INSERT INTO {TABLE}({TABLE}, rowid, {listed}) VALUES ('delete', old.id, {old});"
    add = f"INSERT INTO {TABLE}(rowid, {listed}) VALUES (new.id, {new});"
    tx.execute(f"CREATE TRIGGER IF NOT EXISTS {TABLE}_insert AFTER INSERT ON consultations BEGIN {add} END")
    tx.execute(f"CREATE TRIGGER IF NOT EXISTS {TABLE}_delete AFTER DELETE ON consultations BEGIN {remove} END")
    tx.execute(f"CREATE TRIGGER IF NOT EXISTS {TABLE}_update AFTER UPDATE OF id, {listed} ON consultations "
               f"BEGIN {remove} {add} END")
    if existed:
        return
    started = time.perf_counter()
    tx.execute(f"INSERT INTO {TABLE}({TABLE}) VALUES ('rebuild')")
    rows = tx.query("SELECT count(*) AS n FROM consultations")[0]["n"]
    log.info("journal: text search index built over %d consultation(s) in %.1f s", rows,
             time.perf_counter() - started)


def _trigrams(text: str) -> str:
    """Trigrams covering ``text`` (3 characters or more), ANDed: the index keeps no positions
    (``detail=none``: a fifth of the size, half the cost per row written), so it finds the rows
    holding them all, anywhere; the store's conditions then keep those holding ``text``.

    Every third trigram and the last one, not all of them: each trigram is one more posting list
    for FTS5 to read and intersect (a 14-character audit reference is 12 of them, some in most of
    the rows, like the digits of a year), and the ones left out add little narrowing to those
    kept, which already cover every character. The rows found are still a superset of the matches.
    """
    starts = sorted({*range(0, len(text) - 2, 3), len(text) - 3})
    grams = dict.fromkeys(text[i:i + 3] for i in starts)
    return "(" + " AND ".join('"' + gram.replace('"', '""') + '"' for gram in grams) + ")"


def _number_pieces(text: str) -> list[str]:
    """The literal parts a row matching the store's number GLOB must contain, each masked number
    (``812345*****``) reduced to the digits it shows; parts too short to look up are left out."""
    pieces, last = [], 0
    for match in _MASKED_NUMBER.finditer(text):
        pieces.append(text[last:match.start()] + match.group(1))
        last = match.end()
    pieces.append(text[last:])
    return [piece for piece in pieces if len(piece) >= MIN_CHARACTERS]


def match_query(text: str, alternatives: Iterable[str] = ()) -> str | None:
    """The FTS5 query finding every row the store's conditions can match for ``text``, or None
    when the index cannot help (a text shorter than ``MIN_CHARACTERS``: the scan stays).

    A row matches the store's LIKE when one column holds ``text`` (or one of ``alternatives``,
    the masked form of a full national number); it matches the number GLOB when one column holds
    every literal piece around the masked numbers. The query asks for the trigrams of either, so
    its rows are a superset of the store's: FTS5 folds case at least as widely as LIKE's ASCII
    folding.
    """
    if len(text) < MIN_CHARACTERS:
        return None
    options = [_trigrams(text)] + [_trigrams(other) for other in alternatives if len(other) >= MIN_CHARACTERS]
    if _MASKED_NUMBER.search(text):
        options.append("(" + " AND ".join(_trigrams(piece) for piece in _number_pieces(text)) + ")")
    return " OR ".join(options)


def narrowing(count: Callable[[str], int], text: str, alternatives: Sequence[str], condition: str) -> str | None:
    """The FTS5 query that limits a consultations query to the rows the index finds for ``text``
    (``indexed`` puts it in the WHERE, ANDed with the store's own ``condition``); None when the
    index would not help: a text too short, or one that the newest ``SAMPLE_ROWS`` consultations
    show to be common (``COMMON_SHARE`` of them or more match ``condition``; ``count(sql)`` runs the
    sample with the store's parameters). A common text costs the index more than the scan: on
    bench_mybox.py's year, a NIHII in 72 % of the rows took 50 ms to count and 23 ms for a page
    through the index, 33 ms and 1 ms by the scan, which finds a page of it at once.
    """
    query = match_query(text, alternatives)
    if query is None:
        return None
    hits = count(f"SELECT count(*) AS n FROM (SELECT {condition} AS hit FROM consultations ORDER BY id DESC "
                 f"LIMIT {SAMPLE_ROWS}) WHERE hit")
    return None if hits >= SAMPLE_ROWS * COMMON_SHARE else query


def indexed(placeholder: str) -> str:
    """The WHERE fragment for ``narrowing``'s query, given as ``placeholder`` (``:p3``)."""
    return f"id IN (SELECT rowid FROM {TABLE} WHERE {TABLE} MATCH {placeholder})"


def create_postgresql_index(conn: object, columns: Sequence[str]) -> None:  # pragma: no cover - no PostgreSQL here yet
    """The PostgreSQL counterpart of ``create_sqlite_index``: one ``pg_trgm`` GIN index per column.

    ``gin_trgm_ops`` serves the conditions the journal writes on PostgreSQL (``ILIKE`` for the
    text, ``~`` for a masked number), so ``narrowing`` is not ANDed in there: the planner combines
    the per-column indexes itself (a BitmapOr), and a text under 3 characters is a scan there too.
    What remains to use it: call it from the journal's PostgreSQL migration (the index is schema,
    made once by ``db migrate``, not at each start), with ``pg_trgm`` allowed on the server
    (``CREATE EXTENSION`` needs its privilege once), and measure a common text there as here.
    ``conn`` is a DB-API connection in a transaction.
    """
    cursor = conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for column in columns:
        cursor.execute(f"CREATE INDEX IF NOT EXISTS consultations_{column}_trgm ON consultations "
                       f"USING gin ({column} gin_trgm_ops)")
