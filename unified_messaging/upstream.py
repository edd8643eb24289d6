"""The one upstream seam: the configuration turned into "simulator or MyCareNet", and its clients.

Nothing else in the gateway constructs an STS, GenericInsurability or GenAsync client: the gateway,
the stand-alone invoicing runner and the secure-space commands come here.  What lives here:

* ``UpstreamPlan``: where the services are, which keystore acts there, which CA signs the answers;
  made from the configuration by ``simulator_plan`` (which starts the built-in simulator on its own
  local port, so everything still goes over a real socket) or ``remote_plan``;
* ``UpstreamClients``: for one plan and one licence, one STS token cache shared by every client,
  the tracer, and the renewal of a token the platform refuses (asked again once, for
  GenericInsurability and for GenAsync alike);
* ``Upstream``: both together, as the gateway opens and closes them;
* ``CheckProbe``: the live part of the secure space's configuration check, with a certificate
  that is not the gateway's own.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, Callable, Sequence

import requests
from cryptography import x509

from unified_messaging.config import Config, ConfigError
from unified_messaging.domain.insurability import CareProvider, InsurabilityAnswer, InsurabilityQuery
from unified_messaging.mycarenet.environments import Environment, EnvironmentMismatch, PlatformChoice, choose_platform
from unified_messaging.mycarenet.genasync import GenAsyncClient, PostResult
from unified_messaging.mycarenet.throttling import PLATFORM_MIN_GET_INTERVAL
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.mycarenet.keystore import KeyEntry, Keystore, KeystoreError, describe_certificate, read_keystore
from unified_messaging.mycarenet.memberdata import MemberDataClient
from unified_messaging.upstream_choice import describe_choice, memberdata_async_url, memberdata_url, uses_memberdata
from unified_messaging.mycarenet.sts import SamlToken, StsClient, TokenCache, renewing_token
from unified_messaging.mycarenet.trace import ExchangeTracer
from unified_messaging.mycarenet.wsse import SigningCredential, WsseSigningPlugin
from unified_messaging.securespace.check import Endpoints
from unified_messaging.securespace.licence_store import LicenceInForce
from unified_messaging.securespace.models import Licence
from unified_messaging.serving import RunningServer, start_server
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.devpki import PLATFORM_CBE
from unified_messaging.simulator.genasync import GENASYNC_PATH, FeedbackTimings
from unified_messaging.simulator.memberdata import MEMBERDATA_PATH
from unified_messaging.simulator.memberdata_async import MEMBERDATA_ASYNC_PATH
from unified_messaging.simulator.platform import STS_PATH, build_platform, demo_pki
from unified_messaging.trust import NOT_CHECKED_WITHOUT_EHEALTH_CA, load_ehealth_ca, load_platform_ca

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Secret = Callable[[str, str], str]
"""Resolves a configuration secret: ``secret(value, "[section] key")`` gives the clear value."""

MAX_SIMULATOR_BODY = 128 * 1024 * 1024  # a large eFact post (the simulator checks its own limits)
GENASYNC_MIN_TIMEOUT = 60.0  # an eFact post of several MB takes longer than a consultation


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class UpstreamPlan:
    """Where the upstream services are and which keystore acts there."""

    sts_url: str
    genericinsurability_url: str
    genasync_url: str
    keystore_path: Path
    keystore_password: str
    platform_ca: x509.Certificate | None
    platform_signer_cbe: str | None = None
    sts_certificate: x509.Certificate | None = None
    is_test: bool = True
    timeout: float = 10.0
    ehealth_ca: tuple[x509.Certificate, ...] = ()
    """The eHealth CA bundle: uploaded certificates and the STS's token signer must chain to it
    (empty: not checked)."""
    memberdata_url: str = ""
    """MemberData v1 (sync); "" when no consultation goes over MemberData."""
    memberdata_async_url: str = ""
    """The GenAsync memberData address (MDA, the batch's asynchronous MemberData); "" when not known."""


@dataclass
class StartedSimulator:
    """The built-in simulator, serving on its own port."""

    simulator: Simulator
    server: RunningServer
    url: str


def display_host(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def start_simulator(config: Config, licence_password: str, simulator: Simulator | None = None) -> StartedSimulator:
    """Start ``simulator`` (or the platform the configuration describes) on ``[simulator]``'s address."""
    cfg = config
    if simulator is None:
        sim = cfg.simulator
        simulator = build_platform(
            demo_pki(cfg.data_folder), licences={cfg.licence.username: licence_password}, latency_ms=sim.latency_ms,
            genasync_timings=FeedbackTimings(sim.genasync_acknowledgement_seconds, sim.genasync_detailed_seconds,
                                             sim.genasync_settlement_seconds),
            genasync_min_get_interval=sim.genasync_min_get_interval_seconds,
            faults={"genins": sim.fault_genins, "sts": sim.fault_sts, "genasync": sim.fault_genasync,
                    "memberdata": sim.fault_memberdata},
            fault_slow_seconds=sim.fault_slow_seconds,
        )
    running = start_server(simulator, cfg.simulator.host, cfg.simulator.port,
                           threads=max(8, cfg.server.threads), max_body=MAX_SIMULATOR_BODY, name="um-simulator")
    url = f"http://{display_host(cfg.simulator.host)}:{running.port}"
    logger.info("MyCareNet simulator listening on %s (demo keystores in %s)", url, demo_pki(cfg.data_folder).folder)
    return StartedSimulator(simulator, running, url)


def simulator_plan(config: Config, base_url: str, secret: Secret) -> UpstreamPlan:
    """The plan against the simulator at ``base_url``: the demo keystore unless ``[identity]`` names one."""
    cfg = config
    accepted = cfg.simulator.genasync_min_get_interval_seconds
    if cfg.invoicing.enabled and cfg.invoicing.poll_interval_seconds < accepted:
        raise ConfigError(f"[invoicing] poll_interval_seconds = {cfg.invoicing.poll_interval_seconds:g} is shorter than "
                          f"the simulator accepts between two gets ([simulator] genasync_min_get_interval_seconds = "
                          f"{accepted:g}): every other get would be refused. Set it to {accepted:g} or more.")
    pki = demo_pki(cfg.data_folder)
    return UpstreamPlan(
        sts_url=base_url + STS_PATH,
        genericinsurability_url=base_url + Simulator.GENERICINSURABILITY_PATH,
        genasync_url=base_url + GENASYNC_PATH,
        keystore_path=Path(cfg.identity.keystore) if cfg.identity.keystore else pki.lab.path,
        keystore_password=(secret(cfg.identity.keystore_password, "[identity] keystore_password")
                           if cfg.identity.keystore_password else pki.password),
        platform_ca=load_platform_ca(cfg.upstream.platform_ca) or pki.ca_certificate(),
        platform_signer_cbe=cfg.upstream.platform_signer_cbe or PLATFORM_CBE,
        sts_certificate=pki.load("sts").authentication.certificate,
        is_test=cfg.upstream.is_test,
        timeout=cfg.upstream.timeout_seconds,
        ehealth_ca=load_ehealth_ca(cfg.upstream.ehealth_ca) or (pki.ca_certificate(),),
        memberdata_url=base_url + MEMBERDATA_PATH,
        memberdata_async_url=base_url + MEMBERDATA_ASYNC_PATH,
    )


def remote_plan(config: Config, secret: Secret) -> UpstreamPlan:
    """The plan against the real platform, refusing a configuration that cannot work there."""
    cfg = config
    for key in ("sts_url", "genericinsurability_url"):
        if not getattr(cfg.upstream, key):
            raise ConfigError(f'[upstream] {key} = "" is not valid when [upstream] mode = "remote": '
                              "expected the address of that MyCareNet service.")
    for key in ("keystore", "keystore_password"):
        if not getattr(cfg.identity, key):
            raise ConfigError(f'[identity] {key} = "" is not valid when [upstream] mode = "remote": '
                              "expected the eHealth keystore of the care provider and its password.")
    try:
        choice = choose_platform({f"[upstream] {key}": getattr(cfg.upstream, key)
                                  for key in ("sts_url", "genericinsurability_url", "genasync_url",
                                              "memberdata_url", "memberdata_async_url")},
                                 is_test=cfg.upstream.is_test, is_test_key="[upstream] is_test")
    except EnvironmentMismatch as exc:
        raise ConfigError(str(exc)) from None
    logger.warning(choice.announcement())
    _check_poll_interval(config, choice)
    platform_ca = load_platform_ca(cfg.upstream.platform_ca)
    if platform_ca is None:
        logger.warning("[upstream] platform_ca is not set: signed answers from MyCareNet will not be verified")
    ehealth_ca = load_ehealth_ca(cfg.upstream.ehealth_ca)
    if not ehealth_ca:
        logger.warning(NOT_CHECKED_WITHOUT_EHEALTH_CA)
    if cfg.invoicing.enabled and not cfg.upstream.genasync_url:
        raise ConfigError('[upstream] genasync_url = "" is not valid when [invoicing] enabled = true and '
                          '[upstream] mode = "remote": expected the GenAsync address of the MyCareNet platform '
                          "(or set [invoicing] enabled = false).")
    if cfg.invoicing.enabled and not cfg.invoicing.care_provider_nihii and not cfg.securespace.invoicing_folders:
        raise ConfigError('[invoicing] care_provider_nihii = "" is not valid when invoicing is on with the real '
                          "platform: expected the 11-digit NIHII the invoices are sent for (or name the acting "
                          "identities in [securespace] invoicing_folders, to choose it per file).")
    return UpstreamPlan(cfg.upstream.sts_url, cfg.upstream.genericinsurability_url, cfg.upstream.genasync_url,
                        Path(cfg.identity.keystore),
                        secret(cfg.identity.keystore_password, "[identity] keystore_password"),
                        platform_ca, cfg.upstream.platform_signer_cbe or None,
                        is_test=cfg.upstream.is_test, timeout=cfg.upstream.timeout_seconds, ehealth_ca=ehealth_ca,
                        memberdata_url=memberdata_url(config, choice.environment),
                        memberdata_async_url=memberdata_async_url(config, choice.environment))


def _check_poll_interval(config: Config, choice: PlatformChoice) -> None:
    """MyCareNet refuses gets of one mailbox closer than ``PLATFORM_MIN_GET_INTERVAL`` (#15 point 3)."""
    interval = config.invoicing.poll_interval_seconds
    if not config.invoicing.enabled or interval >= PLATFORM_MIN_GET_INTERVAL:
        return
    if choice.environment is not Environment.OTHER:
        raise ConfigError(f"[invoicing] poll_interval_seconds = {interval:g} is not valid with the "
                          f"{choice.environment.value} MyCareNet platform: it refuses two gets of a mailbox less "
                          f"than {PLATFORM_MIN_GET_INTERVAL:g} s apart. Set it to {PLATFORM_MIN_GET_INTERVAL:g} or "
                          "more (15 is the default).")
    logger.warning("[invoicing] poll_interval_seconds = %g: MyCareNet refuses gets less than %g s apart; "
                   "if %s forwards to MyCareNet, raise it", interval, PLATFORM_MIN_GET_INTERVAL,
                   ", ".join(choice.hosts))


_acting_entry: ContextVar[KeyEntry | None] = ContextVar("um_acting_entry", default=None)
"""The certificate the current GenericInsurability call acts with, when not the default one."""


class SignedInsurability:
    """GenericInsurability (or MemberData) as the core service uses it: signed with the chosen
    certificate, and asking the STS for a new token once when the platform refuses one."""

    def __init__(self, client: GenericInsurabilityClient | MemberDataClient, cache: TokenCache,
                 default: KeyEntry) -> None:
        self.client, self.cache, self.default = client, cache, default

    def get_insurability(self, query: InsurabilityQuery, *, acting: KeyEntry | None = None) -> InsurabilityAnswer:
        entry = acting or self.default
        marker = _acting_entry.set(entry)
        try:
            return renewing_token(self.cache, entry, lambda: self.client.get_insurability(query))
        finally:
            _acting_entry.reset(marker)

    def close(self) -> None:
        self.client.close()


class RenewingGenAsync:
    """A GenAsync client that asks the STS for a new token once when the platform refuses one.

    A refused post was refused before the platform accepted anything (the security check comes
    first), so sending it again with a new token cannot post the file twice; the stream is
    rewound to where the first attempt started.
    """

    def __init__(self, client: GenAsyncClient, cache: TokenCache, entry: KeyEntry) -> None:
        self.client, self.cache, self.entry = client, cache, entry

    @property
    def care_provider(self) -> CareProvider:
        return self.client.care_provider

    @property
    def endpoint(self) -> str:
        return self.client.endpoint

    def post(self, stream: BinaryIO, **options: object) -> PostResult:
        start = stream.tell()

        def attempt() -> PostResult:
            stream.seek(start)
            return self.client.post(stream, **options)
        return renewing_token(self.cache, self.entry, attempt)

    def get(self, **options: object):
        return renewing_token(self.cache, self.entry, lambda: self.client.get(**options))

    def confirm(self, **options: object) -> None:
        return renewing_token(self.cache, self.entry, lambda: self.client.confirm(**options))

    def close(self) -> None:
        self.client.close()


class UpstreamClients:
    """The clients of one plan and one licence, sharing one STS token cache and one tracer."""

    def __init__(self, plan: UpstreamPlan, *, licence_username: str = "", licence_password: str = "",
                 package_name: str = "unified-messaging", trace_folder: str | Path | None = None,
                 clock: Clock = utc_now, licence_source: Callable[[], tuple[str, str]] | None = None) -> None:
        self.plan = plan
        self.clock = clock
        self._licence = licence_source or (lambda: (licence_username, licence_password))
        self._package_name = package_name
        self.tracer = ExchangeTracer(Path(trace_folder)) if trace_folder else None
        session = requests.Session()
        if self.tracer is not None:
            self.tracer.attach(session)
        self.token_cache = TokenCache(
            StsClient(plan.sts_url, session=session, timeout=plan.timeout, now=clock,
                      sts_certificate=plan.sts_certificate, ehealth_ca=plan.ehealth_ca),
            now=clock)
        self._open: list[SignedInsurability | RenewingGenAsync] = []

    def read_entry(self) -> KeyEntry:
        """The plan's keystore's authentication certificate (the gateway's default identity)."""
        return self.read_keystore().authentication

    def read_keystore(self) -> Keystore:
        """The plan's keystore: its authentication entry and its encryption entries."""
        try:
            return read_keystore(self.plan.keystore_path, self.plan.keystore_password)
        except KeystoreError as exc:
            raise ConfigError(f"[identity] keystore = {str(self.plan.keystore_path)!r} cannot be used: "
                              f"{exc}") from None

    def _credential(self, default: KeyEntry) -> Callable[[], SigningCredential]:
        cache = self.token_cache

        def credential() -> SigningCredential:
            return cache.token_provider(_acting_entry.get() or default)()
        return credential

    def insurability(self, default: KeyEntry) -> SignedInsurability:
        """GenericInsurability acting as ``default``, or per call as the certificate the core chose."""
        client = GenericInsurabilityClient(
            self.plan.genericinsurability_url, licence_source=self._licence, package_name=self._package_name,
            is_test=self.plan.is_test, timeout=self.plan.timeout,
            plugins=[WsseSigningPlugin(self._credential(default), now=self.clock)],
            tracer=self.tracer, answer_ca=self.plan.platform_ca,
            answer_signer_cbe=self.plan.platform_signer_cbe, now=self.clock)
        signed = SignedInsurability(client, self.token_cache, default)
        self._open.append(signed)
        return signed

    def memberdata(self, default: KeyEntry, encryption_entries: Sequence[KeyEntry]) -> SignedInsurability:
        """MemberData acting as ``default`` (or per call as the chosen certificate); its answers are
        decrypted with ``encryption_entries`` (the keystore's encryption keys)."""
        if not self.plan.memberdata_url:
            raise ConfigError("[upstream] memberdata_url is needed for MemberData consultations.")
        keys = tuple(encryption_entries)
        client = MemberDataClient(
            self.plan.memberdata_url, decryption_keys=lambda: keys, licence_source=self._licence,
            package_name=self._package_name, is_test=self.plan.is_test, timeout=self.plan.timeout,
            plugins=[WsseSigningPlugin(self._credential(default), now=self.clock)], tracer=self.tracer,
            answer_ca=self.plan.platform_ca, answer_signer_cbe=self.plan.platform_signer_cbe, now=self.clock)
        signed = SignedInsurability(client, self.token_cache, default)
        self._open.append(signed)
        return signed

    def genasync(self, entry: KeyEntry, care_provider: CareProvider, *, throttle_wait: float = 30.0,
                 timeout: float | None = None, endpoint: str | None = None) -> RenewingGenAsync:
        """The GenAsync mailbox of ``care_provider`` at ``endpoint`` (the plan's GenAsync address unless
        given: the memberData one for MDA), acting as ``entry`` (time-out: the plan's, at least a
        minute, unless given)."""
        client = GenAsyncClient(
            endpoint or self.plan.genasync_url, licence_source=self._licence,
            care_provider=care_provider, package_name=self._package_name,
            timeout=timeout if timeout is not None else max(self.plan.timeout, GENASYNC_MIN_TIMEOUT),
            plugins=[WsseSigningPlugin(self.token_cache.token_provider(entry), now=self.clock)],
            tracer=self.tracer, answer_ca=self.plan.platform_ca, now=self.clock, throttle_wait=throttle_wait,
            signer=entry)
        return RenewingGenAsync(client, self.token_cache, entry)

    def endpoints(self, *, invoicing: bool) -> Endpoints:
        """The plan as the configuration check sees it."""
        return Endpoints(self.plan.sts_url, self.plan.genericinsurability_url,
                         self.plan.genasync_url if invoicing else "", self.plan.platform_ca,
                         is_test=self.plan.is_test, timeout=self.plan.timeout, ehealth_ca=self.plan.ehealth_ca)

    def close(self) -> None:
        for client in self._open:
            client.close()
        self._open.clear()


class Upstream:
    """The configured upstream, opened: the simulator started when it is the upstream, the plan,
    the gateway's own certificate and the clients."""

    def __init__(self, config: Config, *, secret: Secret, clock: Clock = utc_now,
                 simulator: Simulator | None = None, simulator_url: str | None = None,
                 recorded_licence: Callable[[], Licence | None] = lambda: None) -> None:
        """``recorded_licence`` reads the licence recorded in the secure space: when there is one, every
        call carries it instead of ``[licence]`` (``LicenceInForce``)."""
        self.config = config
        self.licence_password = secret(config.licence.password, "[licence] password")
        self.licence = LicenceInForce(self.configured_licence(), recorded_licence)
        self.started: StartedSimulator | None = None
        self._simulator_url = simulator_url  # a simulator already running in its own process
        if config.upstream.mode == "simulator" and simulator_url:
            plan = simulator_plan(config, simulator_url, secret)
        elif config.upstream.mode == "simulator":
            self.started = start_simulator(config, self.licence_password, simulator)
            plan = simulator_plan(config, self.started.url, secret)
        else:
            plan = remote_plan(config, secret)
        try:
            self.clients = UpstreamClients(plan, licence_source=self.licence,
                                           package_name=config.licence.package_name,
                                           trace_folder=config.upstream.trace_folder or None, clock=clock)
            self.keystore = self.clients.read_keystore()
            self.entry = self.keystore.authentication
        except BaseException:
            self.close()
            raise
        logger.info("acting upstream as %s", describe_certificate(self.entry.certificate))

    @property
    def plan(self) -> UpstreamPlan:
        return self.clients.plan

    def memberdata(self) -> SignedInsurability | None:
        """The MemberData client acting as the gateway's keystore, or None when no consultation
        goes over MemberData."""
        if not uses_memberdata(self.config):
            return None
        logger.info("%s (MemberData at %s)", describe_choice(self.config), self.plan.memberdata_url)
        return self.clients.memberdata(self.entry, self.keystore.encryption_entries)

    @property
    def simulator(self) -> Simulator | None:
        return self.started.simulator if self.started else None

    @property
    def simulator_url(self) -> str | None:
        return self.started.url if self.started else self._simulator_url

    def configured_licence(self) -> Licence:
        return Licence(self.config.licence.username, self.licence_password)

    def close(self) -> None:
        if getattr(self, "clients", None) is not None:
            self.clients.close()
        if self.started is not None:
            self.started.server.close()
            self.started = None


class CheckProbe:
    """The configuration check's live probes: a token with a secure-space certificate, then one
    signed GenericInsurability call and one signed GenAsync mailbox probe with that token and the
    secure space's licence."""

    def __init__(self, endpoints: Endpoints, *, package_name: str = "unified-messaging",
                 clock: Clock = utc_now) -> None:
        self.endpoints, self.package_name, self.clock = endpoints, package_name, clock

    def request_token(self, entry: KeyEntry) -> SamlToken:
        return StsClient(self.endpoints.sts_url, timeout=self.endpoints.timeout, now=self.clock,
                         ehealth_ca=self.endpoints.ehealth_ca).request_token(entry)

    def get_insurability(self, entry: KeyEntry, token: SamlToken, query: InsurabilityQuery,
                         licence: Licence) -> InsurabilityAnswer:
        credential = SigningCredential(token.assertion_xml, entry.private_key, entry.certificate)
        client = GenericInsurabilityClient(
            self.endpoints.genericinsurability_url, licence_username=licence.username,
            licence_password=licence.password, package_name=self.package_name, is_test=self.endpoints.is_test,
            timeout=self.endpoints.timeout, plugins=[WsseSigningPlugin(lambda: credential, now=self.clock)],
            answer_ca=self.endpoints.platform_ca, now=self.clock)
        try:
            return client.get_insurability(query)
        finally:
            client.close()

    def probe_mailbox(self, entry: KeyEntry, token: SamlToken, care_provider: CareProvider,
                      licence: Licence) -> None:
        """``GenAsyncClient.probe`` on ``care_provider``'s mailbox: a get asking for nothing, never a confirm."""
        credential = SigningCredential(token.assertion_xml, entry.private_key, entry.certificate)
        client = GenAsyncClient(
            self.endpoints.invoicing_url, licence_username=licence.username, licence_password=licence.password,
            care_provider=care_provider, package_name=self.package_name, timeout=self.endpoints.timeout,
            plugins=[WsseSigningPlugin(lambda: credential, now=self.clock)], answer_ca=self.endpoints.platform_ca,
            now=self.clock)
        try:
            client.probe()
        finally:
            client.close()


def genasync_for_keystore(plan: UpstreamPlan, *, licence: Licence, care_provider: CareProvider,
                          throttle_wait: float = 30.0, clock: Clock = utc_now) -> RenewingGenAsync:
    """A GenAsync client acting as the plan's keystore, with the plan's time-out (the stand-alone
    invoicing runner's)."""
    clients = UpstreamClients(plan, licence_username=licence.username, licence_password=licence.password,
                              clock=clock)
    return clients.genasync(clients.read_entry(), care_provider, throttle_wait=throttle_wait, timeout=plan.timeout)


def check_upstream(config: Config, licence: Licence | None, *,
                   invoicing_url: str = "") -> tuple[Endpoints, Callable[[], None]]:
    """The configured upstream for a one-off configuration check, and how to close it.

    In simulator mode a simulator is started for the check's duration; its GenAsync mailbox is the
    INVOICING address unless ``invoicing_url`` names another.
    """
    upstream = config.upstream
    if upstream.mode == "simulator":
        pki = demo_pki(config.data_folder)
        simulator = build_platform(pki, licences={licence.username: licence.password} if licence else {})
        running = start_server(simulator, "127.0.0.1", 0, threads=8, max_body=MAX_SIMULATOR_BODY,
                               name="um-check-simulator")
        base = f"http://127.0.0.1:{running.port}"
        return (Endpoints(base + STS_PATH, base + Simulator.GENERICINSURABILITY_PATH,
                          invoicing_url or base + GENASYNC_PATH, pki.ca_certificate(), is_test=True,
                          timeout=upstream.timeout_seconds,
                          ehealth_ca=load_ehealth_ca(upstream.ehealth_ca) or (pki.ca_certificate(),)), running.close)
    return (Endpoints(upstream.sts_url, upstream.genericinsurability_url, invoicing_url or upstream.genasync_url,
                      load_platform_ca(upstream.platform_ca), is_test=upstream.is_test,
                      timeout=upstream.timeout_seconds, ehealth_ca=load_ehealth_ca(upstream.ehealth_ca)), lambda: None)
