"""One running unified-messaging: built from a Config, started, stopped (the composition root).

The gateway serves the legacy interfaces with waitress; when the configured upstream is the
simulator (the default), the MyCareNet simulator runs in the same process on its own local port,
so that everything between the two goes over a real socket.  What the upstream is and how its
clients are built is ``unified_messaging.upstream``'s business; this module only wires the parts.
"""
from __future__ import annotations

import logging
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from unified_messaging.config import Config, ConfigError
from unified_messaging.insurability.batch import BatchScheduler
from unified_messaging.insurability.batch_job import BatchConfigError, BatchJob, load_batch_job
from unified_messaging.insurability.batch_mda import MdaSettings
from unified_messaging.insurability.contract_xml import ContractSchema
from unified_messaging.insurability.folder import InsurabilityFolders
from unified_messaging.insurability.service import InsurabilityService, ServiceChoice
from unified_messaging.invoicing.identity import Identities, Mailbox, SecureSpaceMailboxes, SingleMailbox
from unified_messaging.invoicing.pipeline import InvoicingPipeline
from unified_messaging.invoicing.store import InvoicingStore
from unified_messaging.journal import Journal
from unified_messaging.monitoring.app import MonitoringApp, gateway_sources
from unified_messaging.monitoring.board import StatusBoard
from unified_messaging.monitoring.health import Sources
from unified_messaging.monitoring.expiry import ExpiryWarnings
from unified_messaging.monitoring.metrics import UpstreamWatch, consultation_observer
from unified_messaging.domain.insurability import CareProvider
from unified_messaging.mycarenet import qualities
from unified_messaging.mycarenet.keystore import KeyEntry
from unified_messaging.mycarenet.memberdata_async import MemberDataAsync
from unified_messaging.mycarenet.qualities import QualityTable, QualityTableError
from unified_messaging.mycarenet.sts import TokenCache
from unified_messaging.operations.instance import InstanceBusy, InstanceLock
from unified_messaging.secrets import SecretError, master_keys, resolve_secret, rotation_pending
from unified_messaging.securespace.catalogue import Refusal
from unified_messaging.securespace.check import CertificateCheck, ConfigurationCheck
from unified_messaging.securespace.selection import CertificateSelector
from unified_messaging.securespace.models import Licence
from unified_messaging.securespace.store import STORE_FILE, SecureSpaceStore
from unified_messaging.serving import ProxyTrust, RunningServer, ServerLimits, start_server
from unified_messaging.simulator.app import Simulator
from unified_messaging.simulator.devpki import LAB_NIHII
from unified_messaging.soap.consult import build_soap_apps
from unified_messaging.soap.contract import Contract
from unified_messaging.soap.router import PREFIXES, ServicesRouter
from unified_messaging.upstream import CheckProbe, RenewingGenAsync, Upstream, display_host
from unified_messaging.web.app import Mybox
from unified_messaging.web.context import PREFIX as MYBOX_PREFIX, MyboxServices
from unified_messaging.wsgi import GatewayApp

if TYPE_CHECKING:
    from unified_messaging.database.leader import Leadership

log = logging.getLogger(__name__)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _interactive(path: str) -> bool:
    """Mybox's pages, health and metrics: served before the SOAP calls waiting for a thread, so that
    a person (or a health check) does not queue behind a burst of machine calls."""
    return not path.startswith(PREFIXES)


def server_limits(config: Config) -> ServerLimits:
    server = config.server
    return ServerLimits(connection_limit=server.connection_limit,
                        max_connections_per_client=server.max_connections_per_client,
                        idle_timeout=server.idle_timeout_seconds,
                        request_read_timeout=server.request_read_timeout_seconds)


class Gateway:
    """Build with a Config, then ``start()``; ``stop()`` closes servers and the journal.

    ``simulator`` replaces the simulated platform the gateway would build itself (tests give one
    with another clock); ``clock`` is the gateway's time (timestamps, token renewal).
    """

    def __init__(self, config: Config, *, simulator: Simulator | None = None,
                 clock: Callable[[], datetime] = utc_now, simulator_url: str | None = None,
                 status_folder: Path | None = None) -> None:
        self.config = config
        self.clock = clock
        self.simulator: Simulator | None = simulator
        self._simulator_url = simulator_url  # the simulator's own process (serve --workers), when it has one
        self.upstream: Upstream | None = None
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
        self.watch: UpstreamWatch | None = None  # the monitoring's observer at the upstream seam
        self._expiry: ExpiryWarnings | None = None
        self._instance: InstanceLock | None = None  # shared while running: restore and key rotation wait
        self._status_folder = status_folder  # serve --workers: where each process tells the others its state
        self.board: StatusBoard | None = None
        self.leadership: "Leadership | None" = None  # [database] url: the election of the node running the singletons

    @property
    def port(self) -> int:
        assert self._main is not None, "start() the gateway first"
        return self._main.port

    @property
    def url(self) -> str:
        return f"http://{display_host(self.config.server.host)}:{self.port}"

    @property
    def services_url(self) -> str:
        return self.url + PREFIXES[0]

    @property
    def mybox_url(self) -> str:
        return self.url + MYBOX_PREFIX

    @property
    def simulator_url(self) -> str | None:
        return self.upstream.simulator_url if self.upstream else None

    @property
    def token_cache(self) -> TokenCache | None:
        return self.upstream.clients.token_cache if self.upstream else None

    def _secret(self, value: str, key: str) -> str:
        try:
            secret = resolve_secret(value, key=key, data_folder=self.config.data_folder)
        except SecretError as exc:
            raise ConfigError(str(exc)) from None
        if secret.origin == "clear" and self.config.upstream.mode == "remote":
            log.warning("%s is written in clear in %s; encrypt it with 'unified-messaging secret encrypt'",
                        key, self.config.source)
        return secret.value

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
            self.securespace = SecureSpaceStore.open(self.config.database.url, self.config.data_folder,
                                                     master_keys(self.config.data_folder), clock=self.clock)
        return self.securespace

    def _recorded_licence(self) -> Licence | None:
        """The licence recorded in the secure space, if one exists (never creating the secure space)."""
        if self.securespace is None and not self.config.database.url and \
                not (self.config.data_folder / STORE_FILE).exists():
            return None
        return self._securespace_store().licence()

    def configuration_check(self, certificate_ids: Sequence[int] = (), *, by: str | None = None) -> list[CertificateCheck]:
        """The secure space's configuration check against this gateway's upstream (Mybox runs it for its
        user ``by``: only with the certificates that user may use)."""
        cfg, upstream = self.config, self.upstream
        store = self._securespace_store()
        endpoints = upstream.clients.endpoints(invoicing=cfg.invoicing.enabled)
        probe = CheckProbe(endpoints, package_name=cfg.licence.package_name, clock=self.clock)
        return ConfigurationCheck(store, endpoints, probe=probe, licence=upstream.licence.current()[0],
                                  clock=self.clock).run(list(certificate_ids), by=by)

    def _mybox(self, sources: Sources) -> Mybox:
        cfg = self.config
        services = MyboxServices(
            config=cfg, journal=self.journal, invoicing=InvoicingStore(self.journal, clock=self.clock),
            securespace=self._securespace_store(), configuration_check=self.configuration_check, clock=self.clock,
            trusted_ca=self.upstream.plan.ehealth_ca or None,
            invoicing_root=cfg.invoicing_root if cfg.invoicing.enabled else None,
            certificates=sources.certificates, storage_faults=sources.storage_faults)
        self.mybox = Mybox(services)
        return self.mybox

    def _invoicing_entry(self, nihii: str) -> KeyEntry:
        """The certificate the invoicing folders act with for ``nihii`` today: chosen by the secure space's
        rules when ``[securespace] invoicing_folders`` names an identity, else ``[identity] keystore``."""
        if self._selector is None or not self.config.securespace.invoicing_folders:
            return self.upstream.entry
        try:
            return self._selector.select("invoicing", nihii, "INVOICING")
        except Refusal as refusal:
            raise ConfigError(f"[securespace] invoicing_folders = {self.config.securespace.invoicing_folders!r} "
                              f"cannot send invoices for [invoicing] care_provider_nihii = {nihii!r}: "
                              f"{refusal}") from None

    def _genasync_for(self, entry: KeyEntry, care_provider: CareProvider) -> RenewingGenAsync:
        client = self.upstream.clients.genasync(entry, care_provider,
                                                throttle_wait=self.config.invoicing.throttle_wait_seconds)
        return self.watch.wrap(client, "genasync", ("post", "get", "confirm"))

    def _genasync_client(self) -> RenewingGenAsync:
        cfg = self.config
        nihii = cfg.invoicing.care_provider_nihii or LAB_NIHII
        return self._genasync_for(self._invoicing_entry(nihii), CareProvider(nihii, cfg.invoicing.care_provider_quality))

    def _invoicing_identities(self) -> Identities:
        """Who each invoicing file is sent as (``invoicing/identity.py``): per file from its sender when
        ``[securespace] invoicing_folders`` names the acting identities, else the one configured care provider."""
        cfg = self.config
        if self._selector is None or not cfg.securespace.invoicing_folders:
            self._invoicing_entry(cfg.invoicing.care_provider_nihii or LAB_NIHII)
            return SingleMailbox(self._genasync_client)
        default = None
        if cfg.invoicing.care_provider_nihii:  # its mailbox is polled even before its first file
            self._invoicing_entry(cfg.invoicing.care_provider_nihii)  # refuse at start-up, not later
            default = Mailbox(cfg.invoicing.care_provider_nihii, cfg.invoicing.care_provider_quality)
        selector = self._selector
        return SecureSpaceMailboxes(
            lambda party, day: selector.choose_for("invoicing", party, "INVOICING", day),
            self._genasync_for, default)

    def _start_invoicing(self) -> None:
        cfg = self.config
        self.invoicing = InvoicingPipeline(
            cfg.invoicing_root, self.journal, self._genasync_client,
            rescan_seconds=cfg.invoicing.rescan_seconds, poll_interval=cfg.invoicing.poll_interval_seconds,
            is_test=cfg.upstream.is_test, clock=self.clock, polling=cfg.invoicing.poll,
            repost_grace=cfg.invoicing.repost_grace_seconds, throttle_retries=cfg.invoicing.throttle_retries,
            identities=self._invoicing_identities(), may_act=self._may_act,
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

    def batch_memberdata_async(self) -> MdaSettings | None:
        """The batch's asynchronous MemberData (MDA, ``insurability/batch_mda.py``) after ``open_service``:
        None when no consultation goes over MemberData, no MDA address is known or
        ``[batch] memberdata_async_min_lines`` is 0.  Each care provider's mailbox acts as the batch's
        certificate for it (the secure space's choice when ``[securespace] batch`` names identities);
        the answers are decrypted with ``[identity] keystore``'s encryption keys, as the sync ones."""
        cfg, upstream = self.config, self.upstream
        if (cfg.batch.memberdata_async_min_lines == 0 or self.insurability is None
                or self.insurability.memberdata is None or not upstream.plan.memberdata_async_url):
            return None
        keys = tuple(upstream.keystore.encryption_entries)
        mailboxes: dict[tuple[str, str], MemberDataAsync | None] = {}

        def mailbox(provider: CareProvider) -> MemberDataAsync | None:
            key = (provider.nihii, provider.quality)
            if key not in mailboxes:
                entry = upstream.entry
                if self._selector is not None and cfg.securespace.batch:
                    try:
                        entry = self._selector.select("batch", provider.nihii, "INSURABILITY")
                    except Refusal:
                        return None  # its lines are asked one by one, and each says why
                client = upstream.clients.genasync(entry, provider, throttle_wait=cfg.invoicing.throttle_wait_seconds,
                                                   endpoint=upstream.plan.memberdata_async_url)
                timed = self.watch.wrap(client, "memberdata_async", ("post", "get", "confirm"))
                mailboxes[key] = MemberDataAsync(timed, lambda: keys, is_test=cfg.upstream.is_test, now=self.clock)
            return mailboxes[key]
        return MdaSettings(mailbox, min_lines=cfg.batch.memberdata_async_min_lines,
                           chunk=cfg.batch.memberdata_async_chunk, poll_interval=cfg.invoicing.poll_interval_seconds,
                           repost_grace=cfg.invoicing.repost_grace_seconds)

    def open_service(self) -> InsurabilityService:
        """The journal, the upstream client (and the simulator) and the core service, without serving.

        ``start()`` uses it; ``unified-messaging batch run`` uses it alone. ``stop()`` closes it.
        """
        if self.insurability is None:
            cfg = self.config
            cfg.data_folder.mkdir(parents=True, exist_ok=True)
            try:
                self._instance = InstanceLock(cfg.data_folder).share()
            except InstanceBusy as exc:
                raise ConfigError(str(exc)) from None
            if rotation_pending(cfg.data_folder):
                log.warning("a master key rotation was interrupted: both keys are accepted until it is finished; "
                            "stop the service and run 'unified-messaging secret rotate-master-key' again")
            self.journal = Journal.open(cfg.database.url, cfg.journal_path)
            try:
                qualities.install(QualityTable.load(cfg.identity.qualities_file))
            except QualityTableError as exc:
                self.stop()
                raise ConfigError(f"[identity] qualities_file = {cfg.identity.qualities_file!r}: {exc}") from None
            try:
                self.upstream = Upstream(cfg, secret=self._secret, clock=self.clock, simulator=self.simulator,
                                         simulator_url=self._simulator_url,
                                         recorded_licence=self._recorded_licence)
                self.simulator = self.upstream.simulator
                self._selector = self._certificate_selector()
                self.watch = UpstreamWatch(cfg.data_folder, clock=self.clock)
                self.upstream.clients.token_cache.observe_source(
                    lambda sts: self.watch.wrap(sts, "sts", ("request_token",)))
                genins = self.watch.wrap(self.upstream.clients.insurability(self.upstream.entry), "genericinsurability",
                                         ("get_insurability",))
                memberdata = self.upstream.memberdata()
                if memberdata is not None:
                    memberdata = self.watch.wrap(memberdata, "memberdata", ("get_insurability",))
                self.insurability = InsurabilityService(genins, self.journal, certificates=self._selector,
                                                        observer=consultation_observer(cfg.data_folder),
                                                        memberdata=memberdata, choice=ServiceChoice(
                                                            cfg.upstream.insurability_service,
                                                            frozenset(cfg.upstream.memberdata_qualities)))
            except BaseException:
                self.stop()
                raise
        return self.insurability

    def start(self, *, front: bool = True, singletons: bool = True, sock: socket.socket | None = None) -> "Gateway":
        """Serve: the HTTP front (SOAP, Mybox, health) when ``front``, on ``sock`` when given (a
        supervisor's), and the singletons (toQuery folders, batch scheduler, invoicing pipeline) when
        ``singletons``; one process does both unless ``serve --workers`` splits them."""
        cfg = self.config
        jobs = self.batch_jobs()
        service = self.open_service()
        try:
            if self._status_folder is not None:
                self.board = StatusBoard(self._status_folder, role="front" if front else "singletons",
                                         storage_faults=self._own_storage_faults, watch=self.watch, clock=self.clock,
                                         leader=self._own_leader if singletons else lambda: None)
            if front:
                self._start_front(service, sock)
            if singletons:
                self._start_singletons(service, jobs)
            if self.board is not None:
                self.board.start()
        except BaseException:
            self.stop()
            raise
        if front:
            log.info("unified-messaging listening on %s (data in %s, journal %s)",
                     self.services_url, cfg.data_folder, self.journal.describe())
            if self.mybox is not None:
                log.info("Mybox, the web UI: %s/", self.mybox_url)
        return self

    def _start_front(self, service: InsurabilityService, sock: socket.socket | None) -> None:
        cfg = self.config
        contract = Contract()
        apps = build_soap_apps(service, contract, max_content_length=cfg.server.max_request_bytes)
        router = ServicesRouter(contract, apps, public_base_url=cfg.server.public_base_url,
                                max_request_bytes=cfg.server.max_request_bytes)
        securespace = self._securespace_store() if cfg.web.enabled else self.securespace
        sources = gateway_sources(
            cfg, self.journal, self.watch, certificate=self.upstream.entry.certificate,
            token_cache=self.token_cache, securespace=securespace, storage_faults=self.storage_faults,
            board=self.board, clock=self.clock)
        sources.leader = self.board.leader if self.board is not None else self._own_leader
        mybox = self._mybox(sources) if cfg.web.enabled else None
        monitoring = MonitoringApp(sources)
        self._expiry = ExpiryWarnings(sources.certificates, clock=self.clock).start()
        self._main = start_server(GatewayApp(router, mybox, monitoring), cfg.server.host, cfg.server.port,
                                  threads=cfg.server.threads, max_body=cfg.server.max_request_bytes * 4,
                                  name="um-gateway", limits=server_limits(cfg),
                                  proxy=ProxyTrust(cfg.server.trusted_proxy, cfg.server.trusted_proxy_headers,
                                                   cfg.server.trusted_proxy_count), oversized=router.too_large,
                                  sock=sock, urgent=_interactive)
        self._servers.append(self._main)

    def _start_singletons(self, service: InsurabilityService, jobs: list[BatchJob]) -> None:
        """On SQLite this node is the only one: it runs them. On PostgreSQL, when elected
        (``database/leader.py``), and only as long as it holds the leadership."""
        cfg = self.config
        if not cfg.database.url:
            self._run_singletons(service, jobs)
            return
        from unified_messaging.database.leader import Leadership  # psycopg only when PostgreSQL is used

        self.leadership = Leadership(cfg.database.url, on_lead=lambda: self._run_singletons(service, jobs),
                                     on_lose=self._stop_singletons,
                                     takeover_seconds=cfg.database.leader_takeover_seconds).start()

    def _own_leader(self) -> bool:
        """Whether this process runs the singletons (on SQLite: always, when it was started with them)."""
        if self.leadership is not None:
            return self.leadership.leading
        return self.batch is not None

    def _may_act(self) -> bool:
        return self.leadership is None or self.leadership.holds()

    def _run_singletons(self, service: InsurabilityService, jobs: list[BatchJob]) -> None:
        cfg = self.config
        if cfg.folders.insurability:
            self.folders = InsurabilityFolders(
                service, cfg.insurability_root, schema=ContractSchema(Contract().folder),
                max_request_file_bytes=cfg.folders.max_request_file_bytes,
                max_parallel=cfg.folders.max_parallel, poll=cfg.folders.poll,
                rescan_seconds=cfg.folders.rescan_seconds, may_act=self._may_act,
            ).start()
        self.batch = BatchScheduler(jobs, service, max_parallel=cfg.batch.max_parallel,
                                    rescan_seconds=cfg.batch.rescan_seconds, journal=self.journal,
                                    memberdata_async=self.batch_memberdata_async()).start()
        if cfg.invoicing.enabled:
            self._start_invoicing()

    def _stop_singletons(self) -> None:
        """Stop the invoicing, folder and batch interfaces (each after its work in flight)."""
        if self.invoicing is not None:
            self.invoicing.stop()
            self.invoicing = None
        if self.folders is not None:
            self.folders.stop()
            self.folders = None
        if self.batch is not None:
            self.batch.stop()
            self.batch = None

    def storage_faults(self) -> dict[str, str]:
        """The folder interfaces' storage faults now (the data folder full or read-only), by interface:
        this process's, and with ``serve --workers`` the singletons process's too."""
        return self.board.storage_faults() if self.board is not None else self._own_storage_faults()

    def _own_storage_faults(self) -> dict[str, str]:
        found = {}
        folders, invoicing = self.folders, self.invoicing  # the leadership's thread may stop them meanwhile
        if folders is not None and folders.watcher.storage_fault:
            found["toQuery"] = folders.watcher.storage_fault
        if invoicing is not None and invoicing.storage_fault:
            found["invoicing"] = invoicing.storage_fault
        return found

    def stop(self) -> None:
        """Stop the folder, invoicing and batch interfaces (after their work in flight), then the servers."""
        if self._expiry is not None:
            self._expiry.stop()
            self._expiry = None
        if self.board is not None:
            self.board.stop()
            self.board = None
        if self.leadership is not None:
            self.leadership.stop()  # the singletons first, then the lock is released
            self.leadership = None
        self._stop_singletons()
        for running in reversed(self._servers):
            running.close()
        self._servers.clear()
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        if self.journal is not None:
            self.journal.close()
        if self.securespace is not None:
            self.securespace.close()
            self.securespace = None
        if self.mybox is not None:
            self.mybox.close()
        self.mybox = None
        self.insurability = None
        if self._instance is not None:
            self._instance.release()
            self._instance = None

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
