"""The order of the records of a 920000, as a small state machine.

10, then per invoice a 20, its lines 50/51/52 and its footer 80, then the 90, one 95 per
mutuality and the 96 that ends the file.
"""
from __future__ import annotations

from unified_messaging.efact.layout import RECORD_NAMES
from unified_messaging.texts import Text, message, text

_EXPECTED_NEXT = {
    "start": frozenset({"10"}),
    "after_10": frozenset({"20", "90"}),
    "in_invoice": frozenset({"50", "51", "52", "80"}),
    "after_80": frozenset({"20", "90"}),
    "after_90": frozenset({"95"}),
    "in_95": frozenset({"95", "96"}),
    "end": frozenset(),
}
_OUT_OF_ORDER = message("record {record_type} ({name}) is out of order: expected {expectation}")
_STATE_AFTER = {
    "10": "after_10", "20": "in_invoice", "50": "in_invoice", "51": "in_invoice",
    "52": "in_invoice", "80": "after_80", "90": "after_90", "95": "in_95", "96": "end",
}
_EXPECTATION_TEXT = {
    "start": message("the sending header 10"),
    "after_10": message("an invoice header 20 or the sending footer 90"),
    "in_invoice": message("a service record 50, 51, 52 or the invoice footer 80"),
    "after_80": message("an invoice header 20 or the sending footer 90"),
    "after_90": message("a mutuality summary 95"),
    "in_95": message("another mutuality summary 95 or the federation summary 96"),
    "end": message("nothing: the federation summary 96 ends the file"),
}


class RecordOrder:
    """Where the file is in the expected sequence of record types."""

    def __init__(self) -> None:
        self.state = "start"

    @property
    def expectation(self) -> str:
        """What may come next, in words."""
        return _EXPECTATION_TEXT[self.state]

    @property
    def expectation_text(self) -> Text:
        return text(_EXPECTATION_TEXT[self.state])

    @property
    def at_end(self) -> bool:
        return self.state == "end"

    def advance(self, record_type: str) -> Text | None:
        """Move past a known record type; the complaint when it is out of order, else None.

        The state follows the record even when it is out of order, so one misplaced record
        gives one complaint, not one per following record.
        """
        complaint = None
        if record_type not in _EXPECTED_NEXT[self.state]:
            complaint = text(_OUT_OF_ORDER, record_type=record_type, name=text(RECORD_NAMES[record_type]),
                             expectation=self.expectation_text)
        self.state = _STATE_AFTER[record_type]
        return complaint
