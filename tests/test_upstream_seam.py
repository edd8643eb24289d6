"""The upstream seam: one place builds the clients; a token the platform refuses is renewed once,
for GenAsync as for GenericInsurability (real simulator, real sockets, real signatures)."""
from __future__ import annotations

import io

import pytest

from tests.invoicing_support import client_for
from tests.support import running_platform
from unified_messaging.simulator.platform import STS_PATH
from unified_messaging.simulator.sending_writer import build_sending
from unified_messaging.domain.errors import UpstreamFault


def roll_sts_key_over(simulator, pki) -> None:
    """The platform's STS key changes: new tokens are signed with the new key, old ones refused."""
    new_key = pki.load("nurse").authentication
    simulator._mounts[STS_PATH]._signing = new_key
    simulator.interceptors[0]._sts = new_key.certificate


def post(client, reference: str):
    return client.post(io.BytesIO(build_sending(zone_204=reference)), input_reference=reference,
                       destination="100", is_test=True)


def test_genasync_renews_a_refused_token_once_and_the_post_goes_through(pki):
    with running_platform(pki) as (simulator, url):
        client = client_for(pki, url)
        assert post(client, "20240223000301").tack.success
        roll_sts_key_over(simulator, pki)
        second = post(client, "20240223000302")
        assert second.tack.success and second.tack.input_reference == "20240223000302"
        client.get()  # the get too goes with the renewed token, without a refusal
        client.close()
    assert simulator.counters["security.refused.SIM-SEC-12"] == 1
    assert simulator.counters["sts.issued"] == 2


def test_a_refusal_that_is_not_about_the_token_is_not_retried(pki):
    with running_platform(pki) as (simulator, url):
        client = client_for(pki, url, licence=("lab-software", "a wrong licence password"))
        with pytest.raises(UpstreamFault) as refused:
            post(client, "20240223000303")
        client.close()
    assert refused.value.code == "SOA-01001"
    assert simulator.counters["sts.issued"] == 1
