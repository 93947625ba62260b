"""Prometheus metrics: what an operator watches on every node.

Counters and histograms are per process and summed across nodes by Prometheus. Queue
figures describe the shared database, so the node answering a scrape reads them fresh
(`verbal.api.metrics`); any node's figures will do.
"""

from __future__ import annotations

import functools
from typing import Any

from prometheus_client import Counter, Gauge, Histogram


@functools.lru_cache(maxsize=4096)
def labelled(metric: Any, *values: str) -> Any:
    """`metric.labels(*values)`, remembered: prometheus_client checks and looks the labels
    up anew on every call, a few microseconds that the message path pays several times per
    message. Not for metrics whose children are cleared (the queue gauges)."""
    return metric.labels(*values)


MESSAGE_TRANSITIONS = Counter(
    "verbal_message_transitions",
    "Message status transitions recorded by this process, by new status and direction.",
    ["status", "direction"],
)
SUBMIT_SECONDS = Histogram(
    "verbal_carrier_submit_seconds",
    "Time for a carrier to accept (or refuse) a message.",
    ["carrier"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CARRIER_ERRORS = Counter(
    "verbal_carrier_errors",
    "Carrier submissions that failed, by kind: rejected (permanent), temporary, timeout.",
    ["carrier", "kind"],
)
CALLBACK_SECONDS = Histogram(
    "verbal_callback_latency_seconds",
    "Time for an app's server to answer a status callback (every attempt).",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
CALLBACKS = Counter(
    "verbal_callbacks",
    "Status callback attempts by outcome: delivered, retried, given_up.",
    ["outcome"],
)
JOBS_RUN = Counter(
    "verbal_jobs_run",
    "Jobs this process ran, by kind and outcome (ok, error).",
    ["kind", "outcome"],
)
MESSAGES_IN_PROGRESS = Gauge(
    "verbal_messages_in_progress",
    "Messages this process works on (its share of the admission limit).",
)
QUEUE_DEPTH = Gauge("verbal_queue_jobs", "Jobs in the queue, by kind.", ["kind"])
QUEUE_DUE = Gauge("verbal_queue_due_jobs", "Jobs due now and not being worked on.")
QUEUE_LAG = Gauge(
    "verbal_queue_lag_seconds", "How long the oldest due, unclaimed job has been waiting."
)
SMPP_BIND_UP = Gauge(
    "verbal_smpp_bind_up",
    "1 while an SMPP bind of this process is bound, else 0.",
    ["carrier", "bind"],
)
SMPP_WINDOW_IN_USE = Gauge(
    "verbal_smpp_window_in_use",
    "submit_sm sent on a bind and still awaiting their response.",
    ["carrier", "bind"],
)
SMPP_SUBMITS = Counter(
    "verbal_smpp_submits",
    "submit_sm PDUs answered or given up, by outcome: ok, throttled, rejected, temporary, "
    "unanswered.",
    ["carrier", "outcome"],
)
SMPP_RECEIPTS = Counter(
    "verbal_smpp_receipts",
    "Delivery receipts received, by what became of them: matched, unmatched (dropped after "
    "waiting for their message), pending (an intermediate state), unreadable.",
    ["carrier", "result"],
)
SMSC_FAILED_BINDS = Counter(
    "verbal_smsc_failed_binds",
    "Binds the sandbox SMSC refused, by reason: refused (wrong credentials or account), "
    "bind_limit (the system_id holds its most binds), locked_out (refused unexamined: its "
    "source already had a bind held back after failures).",
    ["reason"],
)
SMSC_BINDS_HELD = Counter(
    "verbal_smsc_binds_held",
    "Binds the sandbox SMSC held back before examining them, because their source address "
    "or system_id failed to bind recently.",
)
