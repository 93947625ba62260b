"""`verbal serve` on SQLite: the API in one process, the pipeline in a second it forks.

The real command runs as a subprocess, as users run it. The layout must be invisible to an
app (a message goes all the way, metrics and readiness cover both processes) and crashes
of either process must end in a clean restart (verbal/processes.py).
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.conftest import WebhookReceiver
from tests.processes import VerbalProcess
from verbal.processes import FrameReader, encode, merge_metrics

FROM = "+15550001000"


def server_env(database: Path, **extra: str) -> tuple[dict[str, str], str, str]:
    account_sid = "AC" + secrets.token_hex(16)
    auth_token = secrets.token_hex(16)
    env = {
        **os.environ,
        "VERBAL_DATABASE_URL": f"sqlite:///{database}",
        "VERBAL_BOOTSTRAP_ACCOUNT_SID": account_sid,
        "VERBAL_BOOTSTRAP_AUTH_TOKEN": auth_token,
        "VERBAL_LOG_LEVEL": "warning",
        **extra,
    }
    return env, account_sid, auth_token


def add_number(server: VerbalProcess, account_sid: str, auth_token: str) -> None:
    response = httpx.post(
        f"{server.base_url}/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json",
        data={"PhoneNumber": FROM},
        auth=(account_sid, auth_token),
    )
    assert response.status_code == 201, response.text


def send(server: VerbalProcess, account_sid: str, auth_token: str, to: str, callback: str) -> str:
    response = httpx.post(
        f"{server.base_url}/2010-04-01/Accounts/{account_sid}/Messages.json",
        data={"To": to, "From": FROM, "Body": "two cores", "StatusCallback": callback},
        auth=(account_sid, auth_token),
    )
    assert response.status_code == 201, response.text
    return str(response.json()["sid"])


def delivered(receiver: WebhookReceiver, sids: set[str], timeout: float = 30) -> None:
    receiver.wait_for(
        lambda requests: (
            {r.params["MessageSid"] for r in requests if r.params["MessageStatus"] == "delivered"}
            >= sids
        ),
        timeout=timeout,
    )


def wait_exit(process: psutil.Process, timeout: float) -> None:
    try:
        process.wait(timeout=timeout)
    except psutil.TimeoutExpired:
        raise AssertionError(f"process {process.pid} still runs after {timeout} s") from None


@pytest.mark.slow
def test_the_server_uses_two_processes_and_a_message_goes_all_the_way(
    tmp_path: Path, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    env, account_sid, auth_token = server_env(tmp_path / "verbal.db")
    server = VerbalProcess("server", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    assert len(server.pids()) == 2
    ready = httpx.get(f"{server.base_url}/readyz")
    assert ready.status_code == 200, ready.text
    add_number(server, account_sid, auth_token)
    sid = send(server, account_sid, auth_token, "+15552000001", receiver.url("/status"))
    delivered(receiver, {sid})
    statuses = [r.params["MessageStatus"] for r in receiver.received()]
    assert statuses == ["queued", "sent", "delivered"]

    # One exposition, each sample saying which process counted it: the transitions are the
    # pipeline's (it moved the message), the queued one the API's (it accepted it).
    metrics = httpx.get(f"{server.base_url}/metrics").text
    assert (
        'verbal_message_transitions_total{direction="outbound-api",process="pipeline",'
        'status="delivered"} 1.0'
    ) in metrics
    assert (
        'verbal_message_transitions_total{direction="outbound-api",process="api",'
        'status="queued"} 1.0'
    ) in metrics
    assert server.stop() == 0


@pytest.mark.slow
def test_a_handset_text_through_the_api_reaches_the_numbers_app(
    tmp_path: Path, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    """The sandbox API is served by the API process, the carriers run in the pipeline: a
    handset's text is recorded by the first and its app run by the second."""
    env, account_sid, auth_token = server_env(tmp_path / "verbal.db")
    server = VerbalProcess("server", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    response = httpx.post(
        f"{server.base_url}/2010-04-01/Accounts/{account_sid}/IncomingPhoneNumbers.json",
        data={"PhoneNumber": FROM, "SmsUrl": receiver.url("/app")},
        auth=(account_sid, auth_token),
    )
    assert response.status_code == 201, response.text
    text = httpx.post(
        f"{server.base_url}/sandbox/handsets/+15552000009/messages",
        json={"to": FROM, "body": "hello, two processes"},
        auth=(account_sid, auth_token),
    )
    assert text.status_code == 201, text.text
    sid = text.json()["message_sid"]
    [request] = receiver.wait_for(lambda requests: bool(requests), timeout=30)
    assert request.path == "/app"
    assert request.params["MessageSid"] == sid
    assert request.params["Body"] == "hello, two processes"
    assert request.params["From"] == "+15552000009"
    assert server.stop() == 0


@pytest.mark.slow
def test_admission_counts_what_the_pipeline_finished(
    tmp_path: Path, spawned: list[VerbalProcess]
) -> None:
    """The API process refuses sends once the pipeline's backlog passes the limit; a pipeline
    that finishes each message before it next reports must still count as empty (its backlog
    did not change, but the messages handed to it since are gone)."""
    env, account_sid, auth_token = server_env(tmp_path / "verbal.db", VERBAL_ADMISSION_LIMIT="5")
    server = VerbalProcess("server", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    add_number(server, account_sid, auth_token)
    statuses = []
    for n in range(15):
        response = httpx.post(
            f"{server.base_url}/2010-04-01/Accounts/{account_sid}/Messages.json",
            data={"To": f"+155520001{n:02d}", "From": FROM, "Body": "one at a time"},
            auth=(account_sid, auth_token),
        )
        statuses.append(response.status_code)
        time.sleep(0.15)  # time for the pipeline to deliver it and report
    assert statuses == [201] * 15
    assert server.stop() == 0


@pytest.mark.slow
def test_one_process_when_configured(tmp_path: Path, spawned: list[VerbalProcess]) -> None:
    env, _, _ = server_env(tmp_path / "verbal.db", VERBAL_SQLITE_PROCESSES="1")
    server = VerbalProcess("server", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    assert server.pids() == [server.pid]
    assert server.stop() == 0


@pytest.mark.slow
def test_when_the_pipeline_dies_the_server_stops_and_a_restart_delivers(
    tmp_path: Path, receiver: WebhookReceiver, spawned: list[VerbalProcess]
) -> None:
    env, account_sid, auth_token = server_env(tmp_path / "verbal.db")
    server = VerbalProcess("first", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    add_number(server, account_sid, auth_token)
    # Receipts held back, so the message is certainly in flight when the pipeline dies.
    rule = httpx.post(
        f"{server.base_url}/sandbox/rules",
        json={"pattern": "+15552*", "outcome": "deliver", "delay_seconds": 3},
        auth=(account_sid, auth_token),
    )
    assert rule.status_code == 201, rule.text
    sid = send(server, account_sid, auth_token, "+15552000002", receiver.url("/status"))
    receiver.wait_for(
        lambda requests: any(r.params["MessageStatus"] == "sent" for r in requests), timeout=30
    )
    _, pipeline = server.pids()
    os.kill(pipeline, signal.SIGKILL)
    # The API process notices, stops serving and says why, with a non-zero status.
    assert server.process.wait(timeout=30) != 0
    assert "the pipeline process ended" in server.stderr_path.read_text()

    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()
    delivered(receiver, {sid}, timeout=60)
    assert second.stop() == 0


@pytest.mark.slow
def test_when_the_api_process_is_killed_the_pipeline_exits_too(
    tmp_path: Path, spawned: list[VerbalProcess]
) -> None:
    env, _, _ = server_env(tmp_path / "verbal.db")
    server = VerbalProcess("first", env, tmp_path)
    spawned.append(server)
    server.wait_healthy()
    _, pipeline_pid = server.pids()
    pipeline = psutil.Process(pipeline_pid)
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(timeout=10)
    # Orphaned, it reads the end of its link to the API process and exits at once, so
    # that a restart is not kept waiting for its lock.
    wait_exit(pipeline, timeout=10)
    started = time.monotonic()
    second = VerbalProcess("second", env, tmp_path)
    spawned.append(second)
    second.wait_healthy()
    assert time.monotonic() - started < 30
    assert len(second.pids()) == 2


# -- the link's pieces, without processes ------------------------------------------------------


def test_frames_cut_from_a_stream_in_any_pieces() -> None:
    stream = encode(b"A", b"first") + encode(b"W") + encode(b"m", b"x" * 70_000)
    for size in (1, 3, 4096, len(stream)):
        reader = FrameReader()
        frames = []
        for start in range(0, len(stream), size):
            frames.extend(reader.feed(stream[start : start + size]))
        assert frames == [(b"A", b"first"), (b"W", b""), (b"m", b"x" * 70_000)]


def test_metrics_of_the_two_processes_are_merged_and_labelled() -> None:
    api = (
        b"# HELP verbal_jobs_run_total Jobs.\n# TYPE verbal_jobs_run_total counter\n"
        b'verbal_jobs_run_total{kind="inbound",outcome="ok"} 2.0\n'
    )
    pipeline = (
        b"# HELP verbal_jobs_run_total Jobs.\n# TYPE verbal_jobs_run_total counter\n"
        b'verbal_jobs_run_total{kind="inbound",outcome="ok"} 5.0\n'
        b"# HELP verbal_smpp_bind_up Up.\n# TYPE verbal_smpp_bind_up gauge\n"
        b'verbal_smpp_bind_up{bind="0",carrier="a"} 1.0\n'
    )
    merged = merge_metrics(api, pipeline).decode()
    assert merged.count("# TYPE verbal_jobs_run_total counter") == 1
    assert 'verbal_jobs_run_total{kind="inbound",outcome="ok",process="api"} 2.0' in merged
    assert 'verbal_jobs_run_total{kind="inbound",outcome="ok",process="pipeline"} 5.0' in merged
    assert 'verbal_smpp_bind_up{bind="0",carrier="a",process="pipeline"} 1.0' in merged
    # Without the pipeline's (it is gone), the API's own, unchanged.
    assert merge_metrics(api, b"") == api
