"""The secure space's refusal catalogue: every refusal has a code, a cause and a remedy.

The web UI, the command line, the configuration check and the legacy interfaces all show these
entries; README reuses the table below (keep the two in step: ``tests/test_securespace_rules.py``
checks that this table and ``CATALOGUE`` agree).

=============================  ===============================================================  ==================================================================
code                           cause                                                            remedy
=============================  ===============================================================  ==================================================================
SS-NO-SECURE-SPACE             The secure space has not been created yet.                       Create it once: unified-messaging securespace create ...
SS-SECURE-SPACE-EXISTS         The secure space already exists.                                 Change its owner or responsible person with securespace update.
SS-BAD-SSIN                    A national number (SSIN) is not valid.                           Check the 11 digits on the person's eID card.
SS-BAD-NIHII                   A NIHII number is not valid.                                     Check the 11-digit NIHII (RIZIV/INAMI) number of the care provider.
SS-BAD-CBE                     A CBE (enterprise) number is not valid.                          Check the 10-digit number in the Crossroads Bank for Enterprises.
SS-BAD-IDENTIFIER              An identifier is not written as KIND=digits (NIHII, SSIN, CBE).  Write it as NIHII=12345678901, SSIN=... or CBE=...
SS-BAD-DATES                   A period ends before it starts.                                  Give an end date on or after the start date, or none (open-ended).
SS-UNKNOWN-USER                No user has this login.                                          Check the login, or create the user: unified-messaging users add.
SS-USER-EXISTS                 A user with this login already exists.                           Choose another login, or change the existing user.
SS-BAD-ROLE                    A role is not one of administrator, administrative, clinical.    Give one or more of: administrator, administrative, clinical.
SS-WRONG-PASSWORD              The login or the password is wrong.                              Type the password again (it is case-sensitive); an administrator can reset it.
SS-WEAK-PASSWORD               The password is too short.                                       Choose a password of at least 10 characters.
SS-UNKNOWN-CERTIFICATE         No certificate has this number in the secure space.              List them with: unified-messaging certificates list.
SS-BAD-KEYSTORE                The .p12 file cannot be read with this password.                 Upload the .p12 saved by the eHealth certificate manager, with its password.
SS-CERT-UNTRUSTED              The certificate was not issued by the trusted eHealth CA.        Use a keystore issued by eHealth for this environment (acceptance or production); if it is one, the administrator checks [upstream] ehealth_ca.
SS-CERT-NOT-YET-VALID          The certificate is not valid yet.                                Wait until its start date, or use the certificate currently valid.
SS-CERT-EXPIRED                The certificate has expired.                                     Renew it with the eHealth certificate manager and upload the new .p12.
SS-CERT-EXPIRING               The certificate expires soon (a warning, not a refusal).         Renew it now with the eHealth certificate manager and upload the new .p12.
SS-CERT-UNREADABLE             A stored certificate cannot be decrypted with this master key.   Start unified-messaging with the data folder's own master key (master.key / UM_MASTER_KEY).
SS-NOT-ON-ACCESS-LIST          The user is not on the certificate's access list.                Ask the certificate's responsible person to grant you access.
SS-NOT-RESPONSIBLE             Only the certificate's responsible person may change its access  Ask the certificate's responsible person to make the change.
                               list.
SS-NO-ACTING-IDENTITY          The configuration names no acting identity for this interface.   Name the identity this interface acts as (NIHII=..., CBE=... or SSIN=...) in the configuration.
SS-NO-CERTIFICATE              No valid certificate of the acting identity is in the secure     Upload the acting identity's eHealth certificate: unified-messaging certificates add.
                               space.
SS-NO-MANDATE                  The certificate's holder is not the care provider and holds no   Ask the care provider to give a mandate for this service: unified-messaging mandates propose.
                               mandate from it for this service.
SS-MANDATE-PENDING             The mandate is not accepted by both parties yet.                 The party that has not accepted yet must accept it: unified-messaging mandates accept.
SS-MANDATE-SUSPENDED           The mandate is suspended.                                        The mandant can resume it: unified-messaging mandates resume.
SS-MANDATE-STOPPED             The mandate was stopped or transferred to another mandataire.    Ask the care provider for a new mandate, or act with the new mandataire's certificate.
SS-MANDATE-OUT-OF-PERIOD       The mandate does not cover this date.                            Ask the care provider for a mandate covering this date.
SS-MANDATE-OTHER-SERVICE       The mandate is for another service.                              Ask the care provider for a mandate for this service.
SS-MANDATE-TRANSITION          The mandate cannot change this way from its current state.       See the mandate's state and history: unified-messaging mandates show.
SS-MANDATE-SAME-PARTY          The mandant and the mandataire are the same party.               A care provider acts for itself without a mandate; give two different parties.
SS-UNKNOWN-MANDATE             No mandate has this number.                                      List them with: unified-messaging mandates list.
SS-BAD-SERVICE                 The service is not INSURABILITY, INVOICING or MED_ADMIN.         Give one of: INSURABILITY, INVOICING, MED_ADMIN.
SS-QUALITY-NOT-ALLOWED         The certificate holder's quality may not use this service.       Use the certificate of a care provider allowed for this service, or act under a mandate.
SS-NO-LICENCE                  No MyCareNet licence is recorded.                                Record the licence received from MyCareNet: unified-messaging licence set.
SS-LICENCE-REFUSED             MyCareNet refused the licence (username or password).            Check the licence and its password with your software supplier and record it again.
SS-STS-REFUSED                 The eHealth STS refused to issue a token for the certificate.    Read the STS's reason; usually: renew the certificate or use one eHealth trusts.
SS-UPSTREAM-REFUSED            The MyCareNet service refused the probe.                         Read the platform's reason; check the [upstream] settings and the certificate.
SS-UPSTREAM-UNREACHABLE        The service cannot be reached.                                   Check the network, the proxy and the [upstream] address; try again later.
SS-UPSTREAM-NOT-CONFIGURED     No address is configured for this service.                       Configure the service's address in [upstream], or leave the service unused.
SS-UNKNOWN-ESTABLISHMENT       No establishment has this number.                                List them with: unified-messaging establishments list.
SS-NO-SENDER                   The invoicing file names no sender: record 10 has neither a      Have the invoicing software write the sender's third-party payer number in record 10, zone 14, and drop the file again.
                               third-party payer number (zone 14) nor a CBE number (zone 27).
SS-SENDER-NOT-SERVED           The invoicing folders send only for another care provider than   Drop the file in the folders of a gateway that sends for this sender, or let the gateway choose the certificate per file: name the acting identities in [securespace] invoicing_folders.
                               the file's sender.
SS-BAD-LANGUAGE                The language is not one of en, nl, fr.                           Choose English (en), Nederlands (nl) or Français (fr).
=============================  ===============================================================  ==================================================================
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    code: str
    cause: str
    remedy: str


def _parse_table(doc: str) -> dict[str, Entry]:
    """The catalogue, read from the table above so that the docs and the code cannot disagree."""
    lines = doc.splitlines()
    borders = [i for i, line in enumerate(lines) if line.startswith("=====")]
    ruler = lines[borders[0]]
    columns = [(start, start + len(word)) for start, word in _words(ruler)]
    entries: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines[borders[1] + 1:borders[2]]:
        cells = [line[a:b if i < len(columns) - 1 else None].strip() for i, (a, b) in enumerate(columns)]
        if cells[0]:
            current = cells[0]
            entries[current] = [cells[1], cells[2]]
        elif current is not None:
            entries[current][0] = f"{entries[current][0]} {cells[1]}".strip()
            entries[current][1] = f"{entries[current][1]} {cells[2]}".strip()
    return {code: Entry(code, cause, remedy) for code, (cause, remedy) in entries.items()}


def _words(ruler: str) -> list[tuple[int, str]]:
    found, start = [], 0
    for part in ruler.split(" "):
        if part:
            found.append((start, part))
        start += len(part) + 1
    return found


CATALOGUE: Mapping[str, Entry] = _parse_table(__doc__ or "")


class Refusal(Exception):
    """A refusal from the catalogue, with what applies to this case in ``detail``.

    ``str(refusal)`` is the whole sentence for a person: code, cause (and detail), remedy.  The
    detail never holds a password, key material or a full SSIN.
    """

    def __init__(self, code: str, detail: str = "", **data: Any) -> None:
        if code not in CATALOGUE:
            raise KeyError(f"{code} is not in the secure space's refusal catalogue")
        self.code = code
        self.detail = detail
        self.data = data
        super().__init__(self.text)

    @property
    def entry(self) -> Entry:
        return CATALOGUE[self.code]

    @property
    def cause(self) -> str:
        return f"{self.entry.cause} {self.detail}".strip() if self.detail else self.entry.cause

    @property
    def remedy(self) -> str:
        return self.entry.remedy

    @property
    def text(self) -> str:
        return f"{self.code}: {self.cause} {self.remedy}"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "cause": self.cause, "remedy": self.remedy}

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.code, self.detail, self.data))


def _rebuild(code: str, detail: str, data: dict[str, Any]) -> Refusal:
    return Refusal(code, detail, **data)
