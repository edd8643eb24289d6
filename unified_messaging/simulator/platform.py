"""The simulated MyCareNet platform as the gateway embeds it: services, STS and security checks.

``build_platform`` wires one ``Simulator`` with the eHealth STS mounted beside GenericInsurability
and the platform's security checks (signature, timestamp, token, certificate, licence) run before
every business call.  The keys come from a development PKI (``simulator.devpki``) kept in the data
folder; the simulator trusts that PKI's CA only.
"""
from __future__ import annotations

import logging
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Mapping

from lxml import etree

from unified_messaging.simulator.chaos import DEFAULT_SLOW_SECONDS, FaultMode
from unified_messaging.simulator.devpki import CertificateUsage, DevCa, DevPki, load_dev_pki, make_dev_pki, new_key
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.wsse import sign_with_certificate
from unified_messaging.simulator.app import AnswerSigner, Simulator
from unified_messaging.simulator.genasync import GENASYNC_PATH, ContentRules, FeedbackTimings, GenAsyncService
from unified_messaging.simulator.memberdata import EncryptionDirectory, MemberDataService
from unified_messaging.simulator.memberdata_async import MemberDataAsyncService
from unified_messaging.simulator.security import SecurityCheck
from unified_messaging.simulator.sts import SimulatedSts

log = logging.getLogger(__name__)

STS_PATH = "/IAM/SecurityTokenService/v1"
DEMO_PKI_FOLDER = "demo-pki"


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def demo_pki(data_folder: Path, *, now: Callable[[], datetime] = _utc_now) -> DevPki:
    """The demo PKI in ``<data>/demo-pki``: made on first use, made again once its keys expire."""
    folder = Path(data_folder) / DEMO_PKI_FOLDER
    if (folder / "manifest.json").exists():
        pki = load_dev_pki(folder)
        lab_certificate = pki.load("lab").authentication.certificate
        if lab_certificate.not_valid_after_utc > now() + timedelta(days=7):
            return pki
        log.info("the demo keystores in %s expire soon; making new ones", folder)
    else:
        log.info("making the demo PKI (test CA and eHealth-like keystores) in %s", folder)
    return make_dev_pki(folder, today=now().date())


def build_platform(
    pki: DevPki,
    *,
    licences: Mapping[str, str],
    latency_ms: int = 0,
    now: Callable[[], datetime] = _utc_now,
    today: Callable[[], date] | None = None,
    token_lifetime: timedelta = timedelta(hours=8),
    max_clock_skew: timedelta | None = None,
    sign_answers: bool = True,
    genasync_timings: FeedbackTimings = FeedbackTimings(),
    genasync_min_get_interval: float = 10.0,
    genasync_rules: ContentRules = ContentRules(),
    faults: Mapping[str, str] | None = None,
    fault_slow_seconds: float = DEFAULT_SLOW_SECONDS,
) -> Simulator:
    """A simulator that checks every call like the platform: STS at ``STS_PATH``, secured services.

    With ``sign_answers`` the business answers are signed with the platform's certificate
    (Timestamp, BinarySecurityToken and Body), which the gateway verifies.  The GenAsync mailbox
    (``simulator.genasync``) answers eFact sendings after ``genasync_timings``.  ``faults`` (service
    -> mode, see ``simulator.chaos``) are injected from the start; ``simulator.faults`` changes them.
    """
    simulator = Simulator(latency_ms=latency_ms, today=today)
    skew = {} if max_clock_skew is None else {"max_clock_skew": max_clock_skew}
    sts_entry = pki.load("sts").authentication
    sts = SimulatedSts(pki.ca_certificate(), sts_entry, token_lifetime=token_lifetime, now=now,
                       counters=simulator.counters, **skew)
    simulator.mount(STS_PATH, sts)
    simulator.genasync = GenAsyncService(now=now, timings=genasync_timings, min_get_interval=genasync_min_get_interval,
                                         rules=genasync_rules, signing_entry=sts_entry,
                                         trusted_ca=pki.ca_certificate())
    simulator.genasync.register(simulator)
    simulator.memberdata = MemberDataService(key_depot(pki), today=today or date.today, now=now)
    simulator.memberdata.register(simulator)
    simulator.memberdata_async = MemberDataAsyncService(  # answers due after the GenAsync acknowledgement delay
        simulator.memberdata, now=now, delay=genasync_timings.acknowledgement,
        min_get_interval=genasync_min_get_interval, signing_entry=sts_entry, trusted_ca=pki.ca_certificate())
    simulator.memberdata_async.register(simulator)
    simulator.interceptors.append(
        SecurityCheck(pki.ca_certificate(), sts.certificate, licences=licences, now=now,
                      counters=simulator.counters, **skew)
    )
    if sign_answers:
        simulator.answer_signer = _answer_signer(sts_entry, now)
    _set_up_faults(simulator, pki, sts_entry, now, faults or {}, fault_slow_seconds)
    return simulator


def key_depot(pki: DevPki) -> EncryptionDirectory:
    """The encryption certificate of every holder of the PKI, as the eHealth key depot has them."""
    directory = EncryptionDirectory()
    for name in pki.keystores:
        keystore = pki.load(name)
        for entry in keystore.encryption_entries[:1]:
            directory.register(keystore.authentication.certificate, entry.certificate)
    return directory


def _set_up_faults(simulator: Simulator, pki: DevPki, sts_entry: KeyEntry, now: Callable[[], datetime],
                   faults: Mapping[str, str], slow_seconds: float) -> None:
    injection = simulator.faults
    injection.route(STS_PATH, "sts")
    injection.route(GENASYNC_PATH, "genasync")
    injection.slow_seconds = slow_seconds
    injection.use_signers(lambda mode: fault_signer(pki, sts_entry, mode, now()))
    for service, mode in faults.items():
        if mode and mode != FaultMode.NONE.value:
            injection.set(service, mode)


def fault_signer(pki: DevPki, platform: KeyEntry, mode: FaultMode, moment: datetime) -> KeyEntry:
    """A key for the signer faults: the platform's subject, with a certificate that expired 30 days
    ago (issued by the platform's CA) or a valid one from another CA."""
    if mode is FaultMode.EXPIRED_SIGNER:
        ca = pki.ca()
        not_before, not_after = moment - timedelta(days=400), moment - timedelta(days=30)
    else:
        ca = DevCa.create("Another CA (simulated fault)", not_before=moment - timedelta(days=30),
                          not_after=moment + timedelta(days=365))
        not_before, not_after = moment - timedelta(days=1), moment + timedelta(days=300)
    key = new_key()
    certificate = ca.issue(platform.certificate.subject, key.public_key(), usage=CertificateUsage.SIGNING,
                           not_before=not_before, not_after=not_after)
    return KeyEntry(f"fault-{mode.value}", key, certificate, (certificate, ca.certificate))


def _answer_signer(entry: KeyEntry, now: Callable[[], datetime]) -> AnswerSigner:
    def sign(envelope: etree._Element) -> None:
        sign_with_certificate(envelope, key=entry.private_key, certificate=entry.certificate, now=now(),
                              ttl=timedelta(minutes=5))
    return sign
