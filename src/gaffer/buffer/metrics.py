"""Prometheus metrics of the burst buffer (prometheus-client), served by ingest's ``/metrics``.

Counters live in the process that counts them (the gate's in each ingest process, the
drainer's in each drain process); Prometheus sums them over the processes it scrapes. The
gauges describe the shared buffer in Redis and are read from it at each scrape
(:func:`render`), so every process reports the same values.

=============================================  =======  ==========================================
metric                                         type     labels / meaning
=============================================  =======  ==========================================
``gaffer_buffer_gate_decisions_total``         counter  ``outcome`` (buffer, pass, shadow),
                                                        ``reason`` (tripped, overage, held,
                                                        backlog, under_threshold, disabled,
                                                        not_enrolled, error); one per trigger
``gaffer_buffer_drained_total``                counter  ``result`` (materialized, canceled,
                                                        system_failure, requeued, dead_lettered)
``gaffer_buffer_entries``                      gauge    ``project``: entries waiting in its list
``gaffer_buffer_stale_entries``                gauge    ``project``: entries older than
                                                        ``GAFFER_BUFFER_STALE_AFTER_MS`` at the
                                                        last stale-sweep visit
``gaffer_buffer_in_flight``                    gauge    entries popped and not yet acknowledged
``gaffer_buffer_dead_letter``                  gauge    entries no run row could be written for
``gaffer_buffer_dead_letter_deliveries``       gauge    deferred delivery records the database
                                                        refused (kept in the dead-letter list)
=============================================  =======  ==========================================
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from gaffer.buffer.scripts import BufferStats

GATE_DECISIONS = Counter(
    "gaffer_buffer_gate_decisions",
    "Burst buffer gate decisions, one per trigger, by outcome and reason.",
    ["outcome", "reason"],
)
DRAINED = Counter(
    "gaffer_buffer_drained",
    "Buffer entries handled by this process's drainer, by result.",
    ["result"],
)


class _StatsCollector(Collector):
    """Gauges from one :class:`BufferStats` read."""

    def __init__(self, stats: BufferStats) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        """The five gauge families, from the stats given at construction."""
        entries = GaugeMetricFamily(
            "gaffer_buffer_entries",
            "Entries waiting in the buffer, per project.",
            labels=["project"],
        )
        for project, count in sorted(self.stats.entries.items()):
            entries.add_metric([project], count)
        stale = GaugeMetricFamily(
            "gaffer_buffer_stale_entries",
            "Entries older than the stale threshold at the last sweep, per project.",
            labels=["project"],
        )
        for project, count in sorted(self.stats.stale.items()):
            stale.add_metric([project], count)
        yield entries
        yield stale
        yield GaugeMetricFamily(
            "gaffer_buffer_in_flight",
            "Entries popped by a drainer and not yet acknowledged.",
            value=self.stats.in_flight,
        )
        yield GaugeMetricFamily(
            "gaffer_buffer_dead_letter",
            "Entries for which no run row could be written (kept for an operator).",
            value=self.stats.dead,
        )
        yield GaugeMetricFamily(
            "gaffer_buffer_dead_letter_deliveries",
            "Deferred delivery records the database refused (kept for an operator).",
            value=self.stats.dead_deliveries,
        )


def render(stats: BufferStats, registry: CollectorRegistry | None = None) -> bytes:
    """The Prometheus text exposition: this process's registry (default: the global one, with
    the counters above) followed by the buffer gauges from ``stats``."""
    from prometheus_client import REGISTRY

    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(_StatsCollector(stats))
    return generate_latest(registry or REGISTRY) + generate_latest(gauges)
