"""One running unified-messaging: built from a Config, started, stopped.

The gateway serves the legacy interfaces with waitress; when the configured upstream is the
simulator (the default), the MyCareNet simulator runs in the same process on its own local port,
so that everything between the two goes over a real socket.
"""
from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Sequence

import requests
from cryptography import x509

from unified_messaging.config import Config, ConfigError
from unified_messaging.insurability.batch import BatchScheduler
from unified_messaging.insurability.batch_job import BatchConfigError, BatchJob, load_batch_job
from unified_messaging.insurability.contract_xml import ContractSchema
from unified_messaging.insurability.folder import InsurabilityFolders
from unified_messaging.insurability.service import InsurabilityService
from unified_messaging.journal import Journal
from unified_messaging.mycarenet.insurability import GenericInsurabilityClient
from unified_messaging.mycarenet.keystore import KeyEntry, KeystoreError, describe_certificate, read_keystore
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.simulator.devpki import LAB_NIHII, PLATFORM_CBE
from unified_messaging.mycarenet.genasync import GenAsyncClient
from unified_messaging.domain.insurability import CareProvider, InsurabilityAnswer, InsurabilityQuery
from unified_messaging.mycarenet.sts import StsClient, TokenCache, renewing_token
from unified_messaging.mycarenet.trace import ExchangeTracer
from unified_messaging.mycarenet.wsse import SigningCredential, WsseSigningPlugin
from unified_messaging.secrets import SecretError, master_key, resolve_secret
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.selection import CertificateSelector
from unified_messaging.securespace.store import SecureSpaceStore
from unified_messaging.simulator.app import Simulator
from unified_messaging.serving import RunningServer, start_server
from unified_messaging.simulator.genasync import GENASYNC_PATH, FeedbackTimings
from unified_messaging.simulator.platform import STS_PATH, build_platform, demo_pki
from unified_messaging.soap.consult import build_soap_apps
from unified_messaging.soap.contract import Contract
from unified_messaging.soap.router import PREFIXES, ServicesRouter
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.securespace.check import CertificateCheck, ConfigurationCheck, Endpoints
from unified_messaging.securespace.models import Licence
from unified_messaging.web.app import Mybox
from unified_messaging.web.context import PREFIX as MYBOX_PREFIX, MyboxServices

log = logging.getLogger(__name__)

MAX_SIMULATOR_BODY = 128 * 1024 * 1024  # a large eFact post (the simulator checks its own limits)


class GatewayApp:
    """The top-level WSGI app: the services prefixes, Mybox, a redirect from ``/``, 404 elsewhere."""

    def __init__(self, services: ServicesRouter, mybox: Mybox | None = None) -> None:
        self.services = services
        self.mybox = mybox

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if any(path == p or path.startswith(p + "/") for p in PREFIXES):
            return self.services(environ, start_response)
        if self.mybox is not None and (path == MYBOX_PREFIX or path.startswith(MYBOX_PREFIX + "/")):
            return self.mybox(environ, start_response)
        if path in ("", "/", "/unified-messaging", "/unified-messaging/"):
            start_response("302 Found", [("Location", PREFIXES[0]), ("Content-Length", "0")])
            return [b""]
        body = f"Nothing here. The services are listed at {PREFIXES[0]}\n".encode("utf-8")
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                         ("Content-Length", str(len(body)))])
        return [body]


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


_acting_entry: ContextVar[KeyEntry | None] = ContextVar("um_acting_entry", default=None)
"""The certificate the current upstream call acts with, when not the gateway's default one."""


class SignedInsurability:
    """The upstream client as the core service uses it: signed with the chosen certificate, and
    asking the STS for a new token once when the platform refuses one."""

    def __init__(self, client: GenericInsurabilityClient, cache: TokenCache, default: KeyEntry) -> None:
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


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Gateway:
    """Build with a Config, then ``start()``; ``stop()`` closes servers and the journal.

    ``simulator`` replaces the simulated platform the gateway would build itself (tests give one
    with another clock); ``clock`` is the gateway's time (timestamps, token renewal).
    """

    def __init__(self, config: Config, *, simulator: Simulator | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.config = config
        self.clock = clock
        self.simulator: Simulator | None = simulator
        self.simulator_url: str | None = None
        self.token_cache: TokenCache | None = None
        self._upstream: SignedInsurability | None = None
        self._selector: CertificateSelector | None = None
        self._servers: list[RunningServer] = []
        self._main: RunningServer | None = None
        self.journal: Journal | None = None
        self.insurability: InsurabilityService | None = None
        self.folders: InsurabilityFolders | None = None
        self.batch: BatchScheduler | None = None
        self.invoicing: InvoicingPipeline | None = None
        self.securespace: SecureSpaceStore | None = None
        self.mybox: Mybox | None = None

    @property
    def port(self) -> int:
        assert self._main is not None, "start() the gateway first"
        return self._main.port

    @property
    def url(self) -> str:
        return f"http://{self._display_host(self.config.server.host)}:{self.port}"

    @property
    def services_url(self) -> str:
        return self.url + PREFIXES[0]

    @property
    def mybox_url(self) -> str:
        return self.url + MYBOX_PREFIX

    @staticmethod
    def _display_host(host: str) -> str:
        return "127.0.0.1" if host in ("0.0.0.0", "") else host

    def _secret(self, value: str, key: str) -> str:
        try:
            secret = resolve_secret(value, key=key, data_folder=self.config.data_folder)
        except SecretError as exc:
            raise ConfigError(str(exc)) from None
        if secret.origin == "clear" and self.config.upstream.mode == "remote":
            log.warning("%s is written in clear in %s; encrypt it with 'unified-messaging secret encrypt'",
                        key, self.config.source)
        return secret.value

    def _start_simulator(self, licence_password: str) -> UpstreamPlan:
        cfg = self.config
        pki = demo_pki(cfg.data_folder)
        if self.simulator is None:
            sim = cfg.simulator
            self.simulator = build_platform(
                pki, licences={cfg.licence.username: licence_password}, latency_ms=sim.latency_ms,
                genasync_timings=FeedbackTimings(sim.genasync_acknowledgement_seconds, sim.genasync_detailed_seconds,
                                                 sim.genasync_settlement_seconds),
                genasync_min_get_interval=sim.genasync_min_get_interval_seconds,
            )
        running = start_server(self.simulator, cfg.simulator.host, cfg.simulator.port,
                               threads=max(8, cfg.server.threads), max_body=MAX_SIMULATOR_BODY,
                               name="um-simulator")
        self._servers.append(running)
        base = f"http://{self._display_host(cfg.simulator.host)}:{running.port}"
        self.simulator_url = base
        log.info("MyCareNet simulator listening on %s (demo keystores in %s)", base, pki.folder)
        lab = pki.lab
        return UpstreamPlan(
            sts_url=base + STS_PATH,
            genericinsurability_url=base + Simulator.GENERICINSURABILITY_PATH,
            genasync_url=base + GENASYNC_PATH,
            keystore_path=Path(cfg.identity.keystore) if cfg.identity.keystore else lab.path,
            keystore_password=(self._secret(cfg.identity.keystore_password, "[identity] keystore_password")
                               if cfg.identity.keystore_password else pki.password),
            platform_ca=self._platform_ca() or pki.ca_certificate(),
            platform_signer_cbe=cfg.upstream.platform_signer_cbe or PLATFORM_CBE,
            sts_certificate=pki.load("sts").authentication.certificate,
        )

    def _remote_plan(self) -> UpstreamPlan:
        cfg = self.config
        for key in ("sts_url", "genericinsurability_url"):
            if not getattr(cfg.upstream, key):
                raise ConfigError(f'[upstream] {key} = "" is not valid when [upstream] mode = "remote": '
                                  "expected the address of that MyCareNet service.")
        for key in ("keystore", "keystore_password"):
            if not getattr(cfg.identity, key):
                raise ConfigError(f'[identity] {key} = "" is not valid when [upstream] mode = "remote": '
                                  "expected the eHealth keystore of the care provider and its password.")
        platform_ca = self._platform_ca()
        if platform_ca is None:
            log.warning("[upstream] platform_ca is not set: signed answers from MyCareNet will not be verified")
        if cfg.invoicing.enabled and not cfg.upstream.genasync_url:
            raise ConfigError('[upstream] genasync_url = "" is not valid when [invoicing] enabled = true and '
                              '[upstream] mode = "remote": expected the GenAsync address of the MyCareNet platform '
                              "(or set [invoicing] enabled = false).")
        if cfg.invoicing.enabled and not cfg.invoicing.care_provider_nihii:
            raise ConfigError('[invoicing] care_provider_nihii = "" is not valid when invoicing is on with the real '
                              "platform: expected the 11-digit NIHII the invoices are sent for.")
        return UpstreamPlan(cfg.upstream.sts_url, cfg.upstream.genericinsurability_url, cfg.upstream.genasync_url,
                            Path(cfg.identity.keystore),
                            self._secret(cfg.identity.keystore_password, "[identity] keystore_password"),
                            platform_ca, cfg.upstream.platform_signer_cbe or None)

    def _platform_ca(self) -> x509.Certificate | None:
        path = self.config.upstream.platform_ca
        if not path:
            return None
        try:
            return x509.load_pem_x509_certificate(Path(path).read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"[upstream] platform_ca = {path!r} is not valid: expected a readable PEM "
                              f"certificate file ({exc}).") from None

    def _prepare_upstream(self) -> None:
        """The upstream plan (simulator or platform), the acting key, the token cache and the tracer."""
        cfg = self.config
        self._licence_password = self._secret(cfg.licence.password, "[licence] password")
        plan = (self._start_simulator(self._licence_password) if cfg.upstream.mode == "simulator"
                else self._remote_plan())
        try:
            self._entry = read_keystore(plan.keystore_path, plan.keystore_password).authentication
        except KeystoreError as exc:
            raise ConfigError(f"[identity] keystore = {str(plan.keystore_path)!r} cannot be used: {exc}") from None
        self._tracer = ExchangeTracer(Path(cfg.upstream.trace_folder)) if cfg.upstream.trace_folder else None
        sts_session = requests.Session()
        if self._tracer is not None:
            self._tracer.attach(sts_session)
        self.token_cache = TokenCache(
            StsClient(plan.sts_url, session=sts_session, timeout=cfg.upstream.timeout_seconds, now=self.clock,
                      sts_certificate=plan.sts_certificate),
            now=self.clock,
        )
        self._plan = plan
        log.info("acting upstream as %s", describe_certificate(self._entry.certificate))

    def _signing_plugin(self) -> WsseSigningPlugin:
        cache, default = self.token_cache, self._entry

        def credential() -> SigningCredential:
            return cache.token_provider(_acting_entry.get() or default)()

        return WsseSigningPlugin(credential, now=self.clock)

    def _certificate_selector(self) -> CertificateSelector | None:
        """The secure space's selection, when the configuration names acting identities."""
        acting = {"soap": self.config.securespace.soap, "folder": self.config.securespace.insurability_folders,
                  "batch": self.config.securespace.batch, "invoicing": self.config.securespace.invoicing_folders}
        if not any(acting.values()):
            return None
        store = self._securespace_store()
        log.info("certificates chosen per request from the secure space for %s",
                 ", ".join(name for name, value in acting.items() if value))
        return CertificateSelector(
            store, {name: [part.strip() for part in value.split(",") if part.strip()]
                    for name, value in acting.items() if value}, clock=self.clock)

    def _securespace_store(self) -> SecureSpaceStore:
        if self.securespace is None:
            self.securespace = SecureSpaceStore.in_data_folder(self.config.data_folder,
                                                               master_key(self.config.data_folder), clock=self.clock)
        return self.securespace

    def configuration_check(self, certificate_ids: Sequence[int] = ()) -> list[CertificateCheck]:
        """The secure space's configuration check against this gateway's upstream (Mybox runs it)."""
        cfg, plan = self.config, self._plan
        store = self._securespace_store()
        endpoints = Endpoints(plan.sts_url, plan.genericinsurability_url,
                              plan.genasync_url if cfg.invoicing.enabled else "", "", plan.platform_ca,
                              is_test=cfg.upstream.is_test, timeout=cfg.upstream.timeout_seconds)
        licence = store.licence() or Licence(cfg.licence.username, self._licence_password)
        return ConfigurationCheck(store, endpoints, licence=licence, package_name=cfg.licence.package_name,
                                  clock=self.clock).run(list(certificate_ids))

    def _mybox(self) -> Mybox:
        cfg = self.config
        services = MyboxServices(
            config=cfg, journal=self.journal, invoicing=InvoicingStore(self.journal, clock=self.clock),
            securespace=self._securespace_store(), configuration_check=self.configuration_check, clock=self.clock,
            trusted_ca=self._plan.platform_ca if cfg.upstream.mode == "simulator" else None,
            invoicing_root=cfg.invoicing_root if cfg.invoicing.enabled else None)
        self.mybox = Mybox(services)
        return self.mybox

    def _insurability_client(self) -> SignedInsurability:
        cfg, plan = self.config, self._plan
        client = GenericInsurabilityClient(
            plan.genericinsurability_url,
            licence_username=cfg.licence.username,
            licence_password=self._licence_password,
            package_name=cfg.licence.package_name,
            is_test=cfg.upstream.is_test,
            timeout=cfg.upstream.timeout_seconds,
            plugins=[self._signing_plugin()],
            tracer=self._tracer,
            answer_ca=plan.platform_ca,
            answer_signer_cbe=plan.platform_signer_cbe,
            now=self.clock,
        )
        self._upstream = SignedInsurability(client, self.token_cache, self._entry)
        return self._upstream

    def _invoicing_entry(self, nihii: str) -> KeyEntry:
        """The certificate the invoicing folders act with: chosen by the secure space's rules when
        ``[securespace] invoicing_folders`` names an identity, else ``[identity] keystore``."""
        if self._selector is None or not self.config.securespace.invoicing_folders:
            return self._entry
        try:
            return self._selector.select("invoicing", nihii, "INVOICING")
        except Refusal as refusal:
            raise ConfigError(f"[securespace] invoicing_folders = {self.config.securespace.invoicing_folders!r} "
                              f"cannot send invoices for [invoicing] care_provider_nihii = {nihii!r}: "
                              f"{refusal}") from None

    def _genasync_client(self) -> GenAsyncClient:
        cfg, plan = self.config, self._plan
        nihii = cfg.invoicing.care_provider_nihii or LAB_NIHII
        return GenAsyncClient(
            plan.genasync_url,
            licence_username=cfg.licence.username,
            licence_password=self._licence_password,
            care_provider=CareProvider(nihii, cfg.invoicing.care_provider_quality),
            package_name=cfg.licence.package_name,
            timeout=max(cfg.upstream.timeout_seconds, 60.0),
            plugins=[WsseSigningPlugin(self.token_cache.token_provider(self._invoicing_entry(nihii)),
                                       now=self.clock)],
            tracer=self._tracer,
            answer_ca=plan.platform_ca,
            now=self.clock,
            throttle_wait=cfg.invoicing.throttle_wait_seconds,
        )

    def _start_invoicing(self) -> None:
        cfg = self.config
        self._invoicing_entry(cfg.invoicing.care_provider_nihii or LAB_NIHII)  # refuse at start-up, not later
        self.invoicing = InvoicingPipeline(
            cfg.invoicing_root, self.journal, self._genasync_client,
            rescan_seconds=cfg.invoicing.rescan_seconds, poll_interval=cfg.invoicing.poll_interval_seconds,
            is_test=cfg.upstream.is_test, clock=self.clock, polling=cfg.invoicing.poll,
            repost_grace=cfg.invoicing.repost_grace_seconds,
        ).start()
        log.info("invoicing folders in %s", cfg.invoicing_root)

    def batch_jobs(self) -> list[BatchJob]:
        """The ``[batch] jobs``, read and checked (a job that cannot run stops start-up)."""
        jobs = []
        for path in self.config.batch.jobs:
            try:
                jobs.append(load_batch_job(path))
            except BatchConfigError as exc:
                raise ConfigError(f"[batch] jobs: {exc}") from None
        return jobs

    def open_service(self) -> InsurabilityService:
        """The journal, the upstream client (and the simulator) and the core service, without serving.

        ``start()`` uses it; ``unified-messaging batch run`` uses it alone. ``stop()`` closes it.
        """
        if self.insurability is None:
            cfg = self.config
            cfg.data_folder.mkdir(parents=True, exist_ok=True)
            self.journal = Journal(cfg.journal_path)
            try:
                self._prepare_upstream()
                self._selector = self._certificate_selector()
                self.insurability = InsurabilityService(self._insurability_client(), self.journal,
                                                        certificates=self._selector)
            except BaseException:
                self.stop()
                raise
        return self.insurability

    def start(self) -> "Gateway":
        cfg = self.config
        jobs = self.batch_jobs()
        service = self.open_service()
        try:
            contract = Contract()
            apps = build_soap_apps(service, contract, max_content_length=cfg.server.max_request_bytes)
            router = ServicesRouter(contract, apps, public_base_url=cfg.server.public_base_url,
                                    max_request_bytes=cfg.server.max_request_bytes)
            self._main = start_server(GatewayApp(router, self._mybox() if cfg.web.enabled else None), cfg.server.host, cfg.server.port,
                                threads=cfg.server.threads, max_body=cfg.server.max_request_bytes * 4,
                                name="um-gateway")
            self._servers.append(self._main)
            if cfg.folders.insurability:
                self.folders = InsurabilityFolders(
                    service, cfg.insurability_root, schema=ContractSchema(contract.folder),
                    max_request_file_bytes=cfg.folders.max_request_file_bytes,
                    max_parallel=cfg.folders.max_parallel, poll=cfg.folders.poll,
                    rescan_seconds=cfg.folders.rescan_seconds,
                ).start()
            self.batch = BatchScheduler(jobs, service, max_parallel=cfg.batch.max_parallel,
                                        rescan_seconds=cfg.batch.rescan_seconds, journal=self.journal).start()
            if cfg.invoicing.enabled:
                self._start_invoicing()
        except BaseException:
            self.stop()
            raise
        log.info("unified-messaging listening on %s (data in %s, journal %s)",
                 self.services_url, cfg.data_folder, cfg.journal_path)
        if self.mybox is not None:
            log.info("Mybox, the web UI: %s/", self.mybox_url)
        return self

    def stop(self) -> None:
        """Stop the folder, invoicing and batch interfaces (after their work in flight), then the servers."""
        if self.invoicing is not None:
            self.invoicing.stop()
            self.invoicing = None
        if self.folders is not None:
            self.folders.stop()
            self.folders = None
        if self.batch is not None:
            self.batch.stop()
            self.batch = None
        for running in reversed(self._servers):
            running.close()
        self._servers.clear()
        if self._upstream is not None:
            self._upstream.close()
            self._upstream = None
        if self.journal is not None:
            self.journal.close()
        if self.securespace is not None:
            self.securespace.close()
            self.securespace = None
        self.mybox = None
        self.insurability = None

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
