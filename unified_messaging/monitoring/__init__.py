"""Running the gateway in production: the health endpoint and the Prometheus metrics.

* ``metrics``: ``prometheus_client`` in multi-process mode (its files under the data folder), the
  few counters and histograms the gateway's hooks feed (consultations, upstream calls, STS), and
  ``UpstreamWatch``, the one observer at the upstream seam;
* ``collector``: the gauges computed when Prometheus scrapes (invoicing files by status, feedback
  messages, files in error, certificates' days to expiry), read from the journal and the folders;
* ``health``: readiness (journal and folders writable, upstream, token, certificates, backlog);
* ``app``: the WSGI application answering ``/unified-messaging/health`` and ``/metrics``.

Nothing here reads or shows patient data: labels are interfaces, outcomes, services, statuses,
message codes and certificate numbers of the secure space, never an SSIN or a NIHII.
"""
