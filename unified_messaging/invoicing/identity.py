"""Which mailbox, and which certificate, an invoicing file is sent with: chosen per file.

A 920000 names its sender in record 10: the third-party payer number (zone 14: a 0, then the
sender's NIHII) and the CBE number (zone 27).  The pipeline asks its :class:`Identities` for the
mailbox of that sender when it records the file (a file no identity may send goes to ``error/``
with the catalogue's code, before anything is sent), and for a client acting for that mailbox at
each post and each poll, on that day: a mandate suspended or stopped, an establishment whose
period ended or a certificate that expired stops being used at once, without a restart.

* :class:`SingleMailbox`: the gateway sends for one care provider (``[invoicing]
  care_provider_nihii``) with ``[identity] keystore``; a file whose sender is another care provider
  is refused (``SS-SENDER-NOT-SERVED``).
* :class:`SecureSpaceMailboxes`: ``[securespace] invoicing_folders`` names the acting identities;
  the secure space chooses, per file, the sender's own certificate, a certificate with the sender
  among its establishments, or one whose holder holds an active INVOICING mandate from it.

A mailbox is the care provider the GenAsync calls are made for (``Origin/CareProvider``): its
NIHII and quality.  The poller gets each mailbox a file in flight was sent to, and the standing
ones (the configured care provider's), each on its own pace.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import date
from typing import Callable, Protocol

from unified_messaging.domain.insurability import CareProvider
from unified_messaging.efact.report import SendingSummary
from unified_messaging.mycarenet.genasync import GenAsyncClient
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.securespace import rules
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.models import Party, PartyKind
from unified_messaging.securespace.selection import Choice

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Mailbox:
    """A GenAsync mailbox: the care provider (11-digit NIHII and quality) the calls are made for."""

    nihii: str
    quality: str

    @property
    def care_provider(self) -> CareProvider:
        return CareProvider(self.nihii, self.quality)

    def __str__(self) -> str:
        return f"NIHII={self.nihii} ({self.quality})"


@dataclass(frozen=True)
class Acting:
    """The identity chosen for one file: its sender as written, the mailbox, and how the certificate may act."""

    sender: str
    mailbox: Mailbox
    acting: str


def sender_of(summary: SendingSummary) -> Party:
    """The sender record 10 names: its NIHII (zone 14), else its CBE (zone 27); ``SS-NO-SENDER`` when neither."""
    if summary.sender_nihii:
        return Party(PartyKind.NIHII, summary.sender_nihii)
    if summary.sender_cbe:
        return Party(PartyKind.CBE, summary.sender_cbe)
    raise Refusal("SS-NO-SENDER", f"Zone 14 holds {summary.third_party or 'nothing'!r}.")


class Identities(Protocol):
    def for_file(self, summary: SendingSummary, on: date) -> Acting:
        """The identity a file is sent with, or raise the catalogue's ``Refusal``."""

    def client(self, mailbox: Mailbox, on: date) -> GenAsyncClient:
        """A client acting for ``mailbox`` today, or raise ``Refusal`` when no certificate may any more."""

    def standing(self) -> list[Mailbox]:
        """The mailboxes polled even with no file in flight (the first one is the default)."""

    def close(self) -> None:
        """Close every client made."""


class SingleMailbox:
    """One care provider, one certificate: the configured client's (``client_factory``)."""

    def __init__(self, client_factory: Callable[[], GenAsyncClient]) -> None:
        self._factory = client_factory
        self._client: GenAsyncClient | None = None
        self._lock = threading.Lock()

    def _the_client(self) -> GenAsyncClient:
        with self._lock:
            if self._client is None:
                self._client = self._factory()
            return self._client

    def for_file(self, summary: SendingSummary, on: date) -> Acting:
        sender = sender_of(summary)
        mailbox = self.standing()[0]
        if not rules.same_party(sender, Party(PartyKind.NIHII, mailbox.nihii)):
            raise Refusal("SS-SENDER-NOT-SERVED", f"The file's sender is {sender}; these folders send for "
                                                  f"NIHII={mailbox.nihii}.")
        return Acting(str(sender), mailbox, "the configured keystore")

    def client(self, mailbox: Mailbox, on: date) -> GenAsyncClient:
        return self._the_client()

    def standing(self) -> list[Mailbox]:
        provider = self._the_client().care_provider
        return [Mailbox(provider.nihii, provider.quality)]

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None


Choose = Callable[[Party, date], Choice]
"""The secure space's choice of a certificate for a party on a day (raises ``Refusal``)."""
ClientFor = Callable[[KeyEntry, CareProvider], GenAsyncClient]


class SecureSpaceMailboxes:
    """The certificate chosen per file by the secure space's rules (see the module docstring).

    ``default`` is the configured care provider (``[invoicing] care_provider_nihii`` and its quality):
    its mailbox is always polled.  The quality of another sender's mailbox is its certificate's when
    the certificate is its own or has it among its establishments; under a mandate the secure space
    knows no quality for the mandant, and ``default.quality`` is used.
    """

    def __init__(self, choose: Choose, client_for: ClientFor, default: Mailbox | None) -> None:
        self._choose = choose
        self._client_for = client_for
        self._default = default
        self._clients: dict[tuple[Mailbox, str], GenAsyncClient] = {}
        self._lock = threading.Lock()

    def for_file(self, summary: SendingSummary, on: date) -> Acting:
        sender = sender_of(summary)
        choice = self._choose(sender, on)
        if sender.kind is PartyKind.NIHII:
            nihii = sender.value
        else:  # a CBE establishment sends through its certificate holder's own mailbox
            nihii = choice.certificate.nihii11 or choice.certificate.nihii or ""
            if len(nihii) != 11:
                raise Refusal("SS-NO-SENDER", f"The file names only {sender}; its certificate "
                                              f"{choice.certificate.describe()} has no 11-digit NIHII for the mailbox.")
        return Acting(str(sender), Mailbox(nihii, self._quality(nihii, choice)), choice.describe())

    def _quality(self, nihii: str, choice: Choice) -> str:
        default = self._default
        if default is not None and rules.same_party(Party(PartyKind.NIHII, nihii),
                                                    Party(PartyKind.NIHII, default.nihii)):
            return default.quality
        if choice.via != "mandate" and choice.certificate.quality:
            return choice.certificate.quality
        return default.quality if default is not None else "labo"

    def client(self, mailbox: Mailbox, on: date) -> GenAsyncClient:
        choice = self._choose(Party(PartyKind.NIHII, mailbox.nihii), on)
        key = (mailbox, choice.certificate.fingerprint)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                for stale in [k for k in self._clients if k[0] == mailbox]:
                    self._clients.pop(stale).close()  # the certificate for this mailbox changed
                client = self._clients[key] = self._client_for(choice.entry, mailbox.care_provider)
                log.info("invoicing for %s acts with %s", mailbox, choice.describe())
            return client

    def standing(self) -> list[Mailbox]:
        return [self._default] if self._default is not None else []

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


__all__ = ["Acting", "Identities", "Mailbox", "SecureSpaceMailboxes", "SingleMailbox", "sender_of"]
