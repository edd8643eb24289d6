"""A stand-alone runner of the invoicing pipeline: ``python -m unified_messaging.invoicing.run``.

It exists so that the pipeline can run in a process of its own (the crash tests kill it with
SIGKILL at chosen steps; the benchmarks measure its memory) until the gateway starts the pipeline
itself.  ``--pause-at STEP`` makes the pipeline stop at that step: it writes ``<root>/paused-<STEP>``
and sleeps, waiting to be killed.

The client comes from the upstream seam (``unified_messaging.upstream``), as in the gateway:
STS token cache, signing, answer verification and the renewal of a refused token.
"""
from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from cryptography import x509

from unified_messaging.domain.insurability import CareProvider
from unified_messaging.journal.store import Journal
from unified_messaging.securespace.models import Licence
from unified_messaging.upstream import RenewingGenAsync, UpstreamPlan, genasync_for_keystore

log = logging.getLogger(__name__)


def _pause_at(root: Path, step: str | None):
    if not step:
        return None

    def checkpoint(name: str) -> None:
        if name == step:
            (root / f"paused-{name}").write_text(str(time.time()), encoding="utf-8")
            log.warning("paused at %s, waiting to be killed", name)
            while True:
                time.sleep(3600)
    return checkpoint


def main(argv: list[str] | None = None) -> int:
    from unified_messaging.invoicing.pipeline import InvoicingPipeline

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--journal", type=Path, required=True)
    parser.add_argument("--sts-url", required=True)
    parser.add_argument("--genasync-url", required=True)
    parser.add_argument("--keystore", type=Path, required=True)
    parser.add_argument("--keystore-password", required=True)
    parser.add_argument("--licence-username", required=True)
    parser.add_argument("--licence-password", required=True)
    parser.add_argument("--nihii", required=True)
    parser.add_argument("--quality", default="labo")
    parser.add_argument("--platform-ca", type=Path)
    parser.add_argument("--poll-interval", type=float, default=15.0)
    parser.add_argument("--rescan-seconds", type=float, default=10.0)
    parser.add_argument("--throttle-wait", type=float, default=30.0)
    parser.add_argument("--repost-grace", type=float, default=None,
                        help="seconds after which an unanswered post may be sent again (default: twice the timeout)")
    parser.add_argument("--pause-at")
    parser.add_argument("--production", action="store_true", help="send production files (zone 202 = 12)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    platform_ca = x509.load_pem_x509_certificate(args.platform_ca.read_bytes()) if args.platform_ca else None

    plan = UpstreamPlan(sts_url=args.sts_url, genericinsurability_url="", genasync_url=args.genasync_url,
                        keystore_path=args.keystore, keystore_password=args.keystore_password,
                        platform_ca=platform_ca, is_test=not args.production, timeout=60.0)

    def client_factory() -> RenewingGenAsync:
        return genasync_for_keystore(plan, licence=Licence(args.licence_username, args.licence_password),
                                     care_provider=CareProvider(args.nihii, args.quality),
                                     throttle_wait=args.throttle_wait)

    journal = Journal(args.journal)
    pipeline = InvoicingPipeline(args.root, journal, client_factory, rescan_seconds=args.rescan_seconds,
                                 poll_interval=args.poll_interval, is_test=not args.production,
                                 checkpoint=_pause_at(args.root, args.pause_at), repost_grace=args.repost_grace)
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    pipeline.start()
    (args.root / "runner-ready").write_text(str(time.time()), encoding="utf-8")
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    pipeline.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
