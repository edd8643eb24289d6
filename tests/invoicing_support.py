"""Helpers shared by the GenAsync and invoicing tests: a real platform, real signing clients."""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from unified_messaging.mycarenet.devpki import DevPki
from unified_messaging.mycarenet.genasync import GenAsyncClient
from unified_messaging.mycarenet.models import CareProvider
from unified_messaging.invoicing.run import genasync_client
from unified_messaging.serving import serving
from unified_messaging.simulator.genasync import GENASYNC_PATH, FeedbackTimings
from unified_messaging.simulator.platform import STS_PATH, build_platform

LICENCE = ("lab-software", "the-right-licence-password")
LAB = CareProvider("81234530000", "labo")
FAST = FeedbackTimings(acknowledgement=0.0, detailed=0.2, settlement=0.4)


@contextmanager
def running_platform(pki: DevPki, *, timings: FeedbackTimings = FAST, min_get_interval: float = 0.0,
                     **options) -> Iterator[tuple[object, str]]:
    simulator = build_platform(pki, licences=dict([LICENCE]), genasync_timings=timings,
                               genasync_min_get_interval=min_get_interval, **options)
    with serving(simulator) as url:
        yield simulator, url


def client_for(pki: DevPki, url: str, *, throttle_wait: float = 0.2, licence: tuple[str, str] = LICENCE,
               timeout: float = 30.0) -> GenAsyncClient:
    return genasync_client(genasync_url=url + GENASYNC_PATH, sts_url=url + STS_PATH, keystore=pki.lab.path,
                           keystore_password=pki.password, licence_username=licence[0],
                           licence_password=licence[1], care_provider=LAB, platform_ca=pki.ca_certificate(),
                           throttle_wait=throttle_wait, timeout=timeout)


def runner_arguments(pki: DevPki, url: str, root: Path, journal: Path) -> list[str]:
    return ["--root", str(root), "--journal", str(journal), "--sts-url", url + STS_PATH,
            "--genasync-url", url + GENASYNC_PATH, "--keystore", str(pki.lab.path),
            "--keystore-password", pki.password, "--licence-username", LICENCE[0],
            "--licence-password", LICENCE[1], "--nihii", LAB.nihii, "--quality", LAB.quality,
            "--platform-ca", str(pki.ca_certificate_path)]
