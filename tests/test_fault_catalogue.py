"""Every SOA code the simulator answers is the platform's, with the platform's meaning, and the advice
the gateway gives for it follows that meaning (issue #18, point 5).

The platform's catalogue is the GenericInsurability error table (``../shared/reference/errors/
GenInsErrors.json``, read here, never copied).  The codes are collected from the simulator's own source
(every string literal that is a code), so a code added there must be classified here: given a meaning
of the catalogue, or listed as one of the simulator's own (``SIM-SEC-nn``) with why the catalogue has
none for it.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from tests.conftest import reference_path
from unified_messaging.mycarenet import faults
from unified_messaging.mycarenet.sts import TOKEN_REFUSALS
from unified_messaging.securespace.check import LICENCE_CODES
from unified_messaging.simulator import access, memberdata, security, soap, xades_t

SIMULATOR = Path(security.__file__).resolve().parent
CODE = re.compile(r"(SOA-\d{5}|SIM-SEC-\d{2})")

# A meaning of the catalogue -> words of its Dutch and French text (the catalogue's own wording), and
# words the gateway's advice for it must hold.
MEANINGS = {
    "undefined error": ("Niet nader bepaalde fout", "Erreur ind", ("helpdesk",)),
    "user not recognised": ("Gebruiker niet correct aangemeld", "Utilisateur non reconnu", ("licence", "certificate")),
    "no access": ("Gebruiker heeft geen toegang", "n'a pas accès", ("quality", "mandate")),
    "content not conform": ("Inhoud van het bericht niet conform", "Contenu du message malformé", ("data",)),
    "not SOAP": ("SOAP formaat van het bericht niet correct", "format (SOAP)", ("administrator",)),
    "empty body": ("Inhoud van het bericht is leeg", "Corps du message manquant", ("administrator",)),
    "not WS-I": ("WS-I standaard", "standard WS-I", ("administrator",)),
    "not WSDL": ("WSDL referentie", "référence WSDL", ("administrator",)),
    "not XSD": ("XSD referentie", "référence XSD", ("administrator",)),
    "content validation failed": ("Validatie van de inhoud van het bericht mislukt", "validation du contenu",
                                  ("data",)),
}

# What the simulator means by each of its code constants (module.NAME -> a meaning above).
SIMULATOR_MEANINGS = {
    "security.LICENCE_MISSING": "user not recognised",  # the licence is the software's login
    "security.LICENCE_REFUSED": "user not recognised",  # its username or password is wrong
    "security.CERTIFICATE_UNTRUSTED": "user not recognised",  # a certificate the platform never issued
    "security.MALFORMED": "content not conform",  # not well-formed XML
    "security.STS_INVALID_REQUEST": "content not conform",  # an RST the STS cannot answer
    "access.NO_ACCESS": "no access",  # a quality that may not use the service
    "soap.MALFORMED_CONTENT": "content not conform",
    "soap.NOT_SOAP": "not SOAP",
    "soap.EMPTY_BODY": "empty body",
    "soap.NOT_WS_I": "not WS-I",
    "soap.NOT_WSDL": "not WSDL",
    "soap.NOT_XSD": "not XSD",
    "soap.UNDEFINED": "undefined error",
    "xades_t.XADES_MISSING": "content validation failed",  # a required part of the post is missing
}

# The simulator's own codes: the catalogue has no code for the WS-Security mechanics (its SOA-01001 is
# about the user's login, SOA-03xxx about the message's format and content), so none covers these.
NOT_IN_CATALOGUE = {
    "memberdata.NO_ENCRYPTION_KEY": "a caller without an encryption certificate at the key depot (MemberData encrypts)",
    "security.UNSIGNED": "no signature at all: the gateway always signs, so a proxy stripped it",
    "security.SIGNATURE_INVALID": "a signature value that does not verify",
    "security.TAMPERED": "a signed part changed after signing",
    "security.PART_NOT_SIGNED": "the Body or Timestamp outside the signature",
    "security.AMBIGUOUS_REFERENCE": "signature wrapping",
    "security.ALGORITHM_REFUSED": "a refused algorithm (SHA-1)",
    "security.TIMESTAMP_MISSING": "no Timestamp",
    "security.TIMESTAMP_EXPIRED": "an expired Timestamp (the clock)",
    "security.TIMESTAMP_NOT_YET_VALID": "a Timestamp in the future (the clock)",
    "security.TIMESTAMP_TOO_LONG": "a Timestamp lasting too long",
    "security.TOKEN_MISSING": "signed with a certificate instead of a token",
    "security.ASSERTION_INVALID": "an unusable SAML assertion",
    "security.ASSERTION_FOREIGN": "an assertion of another STS (another environment)",
    "security.ASSERTION_SIGNATURE_INVALID": "an altered assertion",
    "security.ASSERTION_EXPIRED": "an expired token (renewed once)",
    "security.ASSERTION_NOT_YET_VALID": "a token not valid yet (the clock)",
    "security.CERTIFICATE_EXPIRED": "a known certificate out of its dates (renew it)",
    "security.REPLAYED": "a replayed message",
    "xades_t.XADES_REFUSED": "an eFact post's XAdES that does not verify",
    "xades_t.XADES_FOREIGN_SIGNER": "an eFact post's XAdES signed by another certificate than the caller's",
}

MODULES = {"security": security, "access": access, "soap": soap, "xades_t": xades_t, "memberdata": memberdata}


@pytest.fixture(scope="module")
def catalogue() -> dict[str, dict]:
    entries = json.loads(reference_path("errors", "GenInsErrors.json").read_text(encoding="utf-8"))
    return {entry["code"]: entry for entry in entries if entry["code"].startswith("SOA-")}


def codes_in_simulator_source() -> dict[str, set[str]]:
    """Every code written in the simulator's source (string literals, docstrings left out) -> its files."""
    found: dict[str, set[str]] = {}
    for path in sorted(SIMULATOR.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and CODE.fullmatch(node.value):
                found.setdefault(node.value, set()).add(path.name)
    return found


def code_of(name: str) -> str:
    module, attribute = name.split(".")
    return getattr(MODULES[module], attribute)


def test_every_code_in_the_simulator_is_classified():
    classified = {code_of(name) for name in {**SIMULATOR_MEANINGS, **NOT_IN_CATALOGUE}}
    written = codes_in_simulator_source()
    assert "SOA-01001" in written and "SIM-SEC-03" in written  # the scan sees the constants
    unclassified = {code: files for code, files in written.items() if code not in classified}
    assert not unclassified, f"codes in the simulator with no meaning in {__name__}: {unclassified}"
    constants = {f"{module}.{name}" for module, value in MODULES.items() for name, code in vars(value).items()
                 if name.isupper() and isinstance(code, str) and CODE.fullmatch(code)}
    assert constants == set(SIMULATOR_MEANINGS) | set(NOT_IN_CATALOGUE)


@pytest.mark.parametrize("name", sorted(SIMULATOR_MEANINGS))
def test_each_catalogue_code_the_simulator_answers_has_the_catalogue_meaning(catalogue, name):
    code, meaning = code_of(name), SIMULATOR_MEANINGS[name]
    assert code in catalogue, f"{name} = {code}, which the platform's catalogue does not have"
    entry = catalogue[code]
    dutch, french, _ = MEANINGS[meaning]
    assert dutch in entry["msgNl"] and french in entry["msgFr"], (
        f"{name} = {code} is used for {meaning!r}, but the catalogue says: {entry['msgNl']!r} / {entry['msgFr']!r}")


@pytest.mark.parametrize("name", sorted(NOT_IN_CATALOGUE))
def test_the_simulators_own_codes_are_plainly_not_the_platforms(catalogue, name):
    code = code_of(name)
    assert code.startswith(security.NON_CATALOGUE_PREFIX) and not code.startswith("SOA-")
    assert code not in catalogue
    assert code in security.__doc__, f"{code} is not documented in simulator/security.py"


@pytest.mark.parametrize("name", sorted(SIMULATOR_MEANINGS))
def test_the_advice_for_a_catalogue_code_follows_its_meaning(catalogue, name):
    code = code_of(name)
    advice = faults.advice_for(code)
    words = MEANINGS[SIMULATOR_MEANINGS[name]][2]
    assert all(word in advice for word in words), (
        f"advice for {code} ({catalogue[code]['msgFr']!r}) should speak of {words}: {advice!r}")
    assert "proxy" not in advice and "signed" not in advice, f"{code} is no signature fault: {advice!r}"


def test_every_catalogue_code_gets_advice_that_fits(catalogue):
    for code, entry in catalogue.items():
        advice = faults.advice_for(code)
        assert advice and "proxy" not in advice, f"{code} ({entry['msgNl']!r}): {advice!r}"
        if "helpdesk" in entry["msgNl"] and code.startswith(("SOA-00", "SOA-02")):
            assert "helpdesk" in advice, f"{code} ({entry['msgNl']!r}): {advice!r}"


@pytest.mark.parametrize("name", sorted(NOT_IN_CATALOGUE))
def test_each_of_the_simulators_own_codes_has_its_own_advice(name):
    code = code_of(name)
    assert code in faults.ADVICE_BY_CODE, f"{code} ({NOT_IN_CATALOGUE[name]}) falls back to generic advice"


def test_the_gateways_code_sets_are_classified_alike():
    """The codes the gateway acts on (renew the token, report a licence refusal) mean what it assumes."""
    tokens = {code_of(name) for name in ("security.TOKEN_MISSING", "security.ASSERTION_INVALID",
                                         "security.ASSERTION_FOREIGN", "security.ASSERTION_SIGNATURE_INVALID",
                                         "security.ASSERTION_EXPIRED", "security.ASSERTION_NOT_YET_VALID")}
    assert TOKEN_REFUSALS == tokens
    assert set(LICENCE_CODES) == {code_of("security.LICENCE_REFUSED"), code_of("security.LICENCE_MISSING")}
    assert not any(code in faults.ADVICE_BY_CODE for code in ("SOA-01003", "SOA-01016", "SOA-01019"))


@pytest.mark.parametrize("language, meaning", [("nl", "Gebruiker niet correct aangemeld"),
                                               ("fr", "Utilisateur non reconnu")])
def test_mybox_shows_a_licence_refusal_with_the_catalogues_meaning_in_the_users_language(language, meaning):
    """The simulator's answer, read by the gateway's fault parser, shown as Mybox shows a fault's English
    text (an invoicing file waiting to be posted again): the advice translated, the platform's words kept."""
    from lxml import etree

    from unified_messaging.web.i18n import Translator

    refusal = security.SimulatedFault(security.LICENCE_REFUSED, "The MyCareNet licence username or password is "
                                                                "not recognised")
    envelope = etree.fromstring(soap.fault_envelope(refusal))
    fault = faults.soap_fault(envelope.find(f".//{{{soap.SOAP11_ENV}}}Fault"))
    assert fault.code == "SOA-01001" and "ticket" in " ".join(fault.details)
    [line] = Translator(language).english(str(fault))
    assert "(SOA-01001)" in line and "The MyCareNet licence username or password is not recognised" in line
    assert meaning in line and "[licence]" in line and "did not recognise" not in line, line
