"""One running Verbal: the database, the carriers, the pipeline and its workers, wired once.

`verbal serve` builds a Runtime, starts it, and serves the API on top of it; tests do the
same in-process. Nothing here knows about HTTP routes.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import socket
from typing import IO, TYPE_CHECKING

from sqlalchemy.engine import make_url

from verbal.carriers.base import Carrier, CarrierRouter, RouteRule
from verbal.carriers.encoding import Alphabet
from verbal.carriers.sandbox import SandboxCarrier, SandboxNetwork
from verbal.config import Settings, SmppCarrierSettings
from verbal.dialects import DIALECTS
from verbal.dialects.detect import detect
from verbal.dispatch.leases import Leases
from verbal.dispatch.queue import JobQueue
from verbal.dispatch.ratelimit import DatabaseBuckets, MemoryBuckets
from verbal.dispatch.wakeup import JobNotifications
from verbal.dispatch.workers import Dispatcher
from verbal.engine.calls import Calls
from verbal.engine.fetch import AppFetcher
from verbal.engine.sessions import STEP_JOB, Engine
from verbal.messaging.callbacks import REDELIVERY_JOB, CallbackStage, Redeliveries, RetryPolicy
from verbal.messaging.optouts import OptOuts
from verbal.messaging.service import INBOUND_JOB, Messaging, PipelineSettings
from verbal.singletons import SingletonCarrier
from verbal.store import create_engine, migrate, normalize_url, read_sessions, session_factory
from verbal.store.directory import Directory
from verbal.store.journal import Backend, Journal, backend_for
from verbal.store.models import Account
from verbal.store.services import Services
from verbal.tasks import cancel_and_wait
from verbal.voice.audio import http_fetcher, renderer
from verbal.voice.legs import Lines
from verbal.voice.records import recover as recover_calls
from verbal.voice.sandbox import SandboxPhones
from verbal.voice.sip import SipLines, sip_lines
from verbal.webhooks.client import HttpClient
from verbal.webhooks.conversations import ConversationCookies

if TYPE_CHECKING:
    from verbal.carriers.sandbox_smsc import SandboxSmsc
    from verbal.carriers.smpp_carrier import SmppCarrierConfig
    from verbal.processes import PipelineProcess

log = logging.getLogger("verbal")


class AlreadyServing(RuntimeError):
    """Another Verbal process serves this SQLite database."""


class UnsupportedLayout(RuntimeError):
    """The settings ask for a layout the database cannot carry (split roles on SQLite, other
    than the two processes `verbal serve` forks itself)."""


class SmscUnavailable(RuntimeError):
    """The sandbox's SMSC cannot listen where the settings say."""


def sqlite_file(database_url: str) -> str | None:
    """The file of a SQLite URL (None for an in-memory database)."""
    database = make_url(normalize_url(database_url)).database
    return None if not database or database == ":memory:" else database


def check_layout(settings: Settings) -> None:
    """Raise `UnsupportedLayout` for settings the database cannot carry."""
    if settings.is_sqlite and settings.role != "all":
        raise UnsupportedLayout(
            f"role {settings.role!r} needs PostgreSQL: a SQLite file is served by one "
            "`verbal serve` with role 'all'"
        )


def hold_sqlite_lock(database_url: str) -> IO[bytes] | None:
    """Take the one-server lock beside a SQLite file; the returned file holds it.

    A SQLite database has one server: its start-up takes over every job lease, which is right
    after a crash and wrong while another server is still working on them.
    """
    database = sqlite_file(database_url)
    if database is None:
        return None
    lock = open(f"{database}.lock", "wb")  # noqa: SIM115 - held open for the process's life
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise AlreadyServing(
            f"another Verbal is already serving {database}; stop it first or use another "
            "VERBAL_DATABASE_URL (PostgreSQL lets several processes share one database)"
        ) from None
    return lock


_ALPHABETS = {"gsm7": Alphabet.GSM7, "latin1": Alphabet.LATIN1, "ucs2": Alphabet.UCS2}


def smpp_config(entry: SmppCarrierSettings, settings: Settings) -> SmppCarrierConfig:
    """The carrier an entry of `Settings.carriers` declares.

    A message waits for a bind at most half the pipeline's submit timeout, so that when
    every bind is down the next carrier still gets its turn within the same attempt.
    """
    # The SMPP modules are imported only where SMPP is configured (here, `sandbox_smsc` and
    # `Runtime.__init__`): they would add about 1.5 MiB to every other process.
    from verbal.carriers.smpp.client import BindConfig
    from verbal.carriers.smpp.session import SessionConfig
    from verbal.carriers.smpp.text import LongMessages, TextCoding
    from verbal.carriers.smpp_carrier import SmppCarrierConfig

    return SmppCarrierConfig(
        name=entry.name,
        bind=BindConfig(
            host=entry.host,
            port=entry.port,
            system_id=entry.system_id,
            password=entry.password.get_secret_value(),
            system_type=entry.system_type,
            session=SessionConfig(
                window=entry.window,
                response_timeout=entry.response_timeout_seconds,
                enquire_link_interval=entry.enquire_link_seconds,
            ),
            connect_timeout=entry.connect_timeout_seconds,
            reconnect_min=entry.reconnect_min_seconds,
            reconnect_max=entry.reconnect_max_seconds,
            throughput=entry.bind_throughput,
            throttle_pause=entry.throttle_pause_seconds,
        ),
        binds=entry.binds,
        pairs=entry.bind_mode == "tx_rx",
        coding=TextCoding(
            alphabets=tuple(_ALPHABETS[name] for name in entry.alphabets),
            default_alphabet=_ALPHABETS[entry.default_alphabet],
            gsm7_packed=entry.gsm7_packed,
            long_messages=LongMessages(entry.long_messages),
        ),
        registered_delivery=entry.registered_delivery,
        service_type=entry.service_type,
        prefixes=tuple(entry.prefixes),
        singleton=entry.singleton,
        bind_wait=min(entry.bind_wait_seconds, settings.submit_timeout_seconds / 2),
        submit_patience=settings.submit_timeout_seconds,
        mo_timeout=entry.mo_timeout_seconds,
        receipt_wait=entry.receipt_wait_seconds,
        status_interval=settings.carrier_status_seconds,
    )


def sandbox_smsc(network: SandboxNetwork, settings: Settings) -> SandboxSmsc:
    """The sandbox's SMPP front door, as the `smsc_*` settings describe it."""
    from verbal.carriers.sandbox_smsc import EsmeAccount, SandboxSmsc
    from verbal.carriers.smpp.server import ServerLimits

    return SandboxSmsc(
        network,
        [
            EsmeAccount(
                system_id=esme.system_id,
                password=esme.password.get_secret_value(),
                account_sid=esme.account_sid,
                numbers=tuple(esme.numbers),
            )
            for esme in settings.smsc_esmes
        ],
        host=settings.smsc_host,
        port=settings.smsc_port,
        limits=ServerLimits(
            max_connections=settings.smsc_max_connections,
            max_binds_per_system_id=settings.smsc_max_binds_per_esme,
            window=settings.smsc_window,
            response_timeout=settings.smsc_response_timeout_seconds,
            enquire_link_interval=settings.smsc_enquire_link_seconds,
            idle_timeout=settings.smsc_idle_timeout_seconds,
            failed_binds_allowed=settings.smsc_failed_binds_allowed,
            failed_bind_delay=settings.smsc_failed_bind_delay_seconds,
            failed_bind_max_delay=settings.smsc_failed_bind_max_delay_seconds,
        ),
        poll_seconds=settings.idle_poll_seconds,
        parts_timeout=settings.smsc_parts_timeout_seconds,
        shared_database=not settings.is_sqlite,
    )


class Runtime:
    """`pipeline`: in the API process of a two-process SQLite server, the pipeline process
    its messages go to; `pipeline_process`: this is that pipeline process
    (`verbal/processes.py`)."""

    def __init__(
        self,
        settings: Settings,
        *,
        pipeline: PipelineProcess | None = None,
        pipeline_process: bool = False,
        journal_backend: Backend | None = None,
        schema_ready: bool = False,
    ) -> None:
        self.settings = settings
        # True when the caller has migrated already (`verbal serve` does it in a child).
        self._schema_ready = schema_ready
        self.pipeline = pipeline
        self._pipeline_process = pipeline_process
        self.engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        self.sessions = session_factory(self.engine, group_commit=settings.sqlite_group_commit)
        self.directory = Directory(self.sessions)
        self.services = Services(self.sessions)
        self.optouts = OptOuts(self.sessions, self.services)
        self.directory.when_numbers_change(self.services.forget_pools)
        # The one writer of the message pipeline's records (verbal/store/journal.py); in a
        # pipeline process, its ticks are written by the API process's.
        self.journal = Journal(journal_backend or backend_for(self.engine))
        if pipeline is not None:
            pipeline.journal = self.journal
        owner = f"{socket.gethostname()}:{os.getpid()}"
        self.queue = JobQueue(
            self.sessions,
            owner=owner,
            lease_seconds=settings.job_lease_seconds,
            skip_locked=not settings.is_sqlite,
        )
        # The sandbox network, and its SMPP front door when enabled.
        self.sandbox: SandboxNetwork | None = None
        self.smsc: SandboxSmsc | None = None
        carriers: list[Carrier] = []
        rules: dict[str, RouteRule] = {}
        if settings.sandbox_enabled:
            self.sandbox = SandboxNetwork(self.sessions, settings.sandbox_prefixes, self.directory)
            carriers.append(
                SandboxCarrier(self.sandbox, self.journal, shared_database=not settings.is_sqlite)
            )
            if settings.smsc_enabled:
                self.smsc = sandbox_smsc(self.sandbox, settings)
            rules["sandbox"] = RouteRule(prefixes=tuple(settings.sandbox_prefixes))
        rates = {"sandbox": settings.sandbox_rate_per_second}
        if settings.carriers:
            from verbal.carriers.smpp_carrier import SmppCarrier
        for entry in settings.carriers:
            carriers.append(
                SmppCarrier(smpp_config(entry, settings), self.sessions, self.journal, owner=owner)
            )
            rules[entry.name] = RouteRule(
                tuple(entry.prefixes), tuple(entry.senders), entry.priority
            )
            rates[entry.name] = entry.throughput
        self.router = CarrierRouter(carriers, rules)
        self.http = HttpClient(settings.webhook_timeout_seconds, policy=settings.egress_policy)
        policy = RetryPolicy(
            max_attempts=settings.webhook_max_attempts,
            base_seconds=settings.webhook_retry_base_seconds,
            max_seconds=settings.webhook_retry_max_seconds,
        )
        self.callbacks = CallbackStage(
            self.http,
            policy,
            self.journal,
            lambda account_id: self.messaging.token_of(account_id),
            concurrency=settings.worker_concurrency,
        )
        self.messaging = Messaging(
            self.sessions,
            self.journal,
            self.queue,
            self.router,
            PipelineSettings(
                submit_timeout_seconds=settings.submit_timeout_seconds,
                submit_retry_base_seconds=settings.submit_retry_base_seconds,
                submit_retry_max_seconds=settings.submit_retry_max_seconds,
                validity_period_seconds=settings.validity_period_seconds,
                schedule_min_lead_seconds=settings.schedule_min_lead_seconds,
                schedule_max_lead_seconds=settings.schedule_max_lead_seconds,
                rate_per_carrier=rates,
                rate_per_sender=settings.sender_rate_per_second,
                submit_concurrency=settings.worker_concurrency,
                admission_limit=settings.admission_limit,
                lease_seconds=settings.job_lease_seconds,
                poll_seconds=settings.idle_poll_seconds
                if settings.is_sqlite
                else settings.notified_poll_seconds,
            ),
            # One SQLite process keeps its buckets in memory; workers sharing PostgreSQL
            # share them in the database, so a limit holds across every node.
            MemoryBuckets() if settings.is_sqlite else DatabaseBuckets(self.sessions),
            self.directory,
            self.callbacks,
            self.optouts,
            self.services,
            owner=owner,
            shared_database=not settings.is_sqlite,
            elsewhere=pipeline,
        )
        if pipeline is not None:
            self.queue.add_listener(pipeline.wake)
        self.redeliveries = Redeliveries(self.http, policy, self.journal, self.queue)
        # On PostgreSQL new jobs announce themselves (LISTEN/NOTIFY): poll only as a safety net.
        self.notifications: JobNotifications | None = None
        idle_poll = settings.idle_poll_seconds
        if not settings.is_sqlite and self.runs_workers:
            idle_poll = settings.notified_poll_seconds
        self.dispatcher = Dispatcher(
            self.queue,
            self.sessions.begin,
            concurrency=settings.worker_concurrency,
            idle_poll_seconds=idle_poll,
        )
        if not settings.is_sqlite and self.runs_workers:
            self.notifications = JobNotifications(settings.database_url, self.wake_workers)
        self.interpreter = Engine(
            self.sessions,
            read_sessions(self.engine),
            self.engine,
            self.journal,
            self.queue,
            self.messaging,
            self.directory,
            AppFetcher(
                self.http,
                settings.app_timeout_seconds,
                ConversationCookies(
                    self.sessions, self.journal, shared_database=not settings.is_sqlite
                ),
            ),
            DIALECTS,
            detect,
        )
        # Calls: the lines they go out on are the SIP trunks, then the sandbox's handsets (a
        # trunk declared for a number takes its calls, even a sandbox-looking one).
        lines: list[Lines] = []
        self.sip: SipLines | None = None
        if settings.sip_trunks or settings.sip_listen:
            self.sip = sip_lines(settings, renderer(http_fetcher(self.http)))
            lines.append(self.sip)
        self.phones: SandboxPhones | None = None
        if self.sandbox is not None:
            self.phones = SandboxPhones(self.sandbox, http_fetcher(self.http))
            lines.append(self.phones)
        self.calls = Calls(
            self.interpreter,
            self.sessions,
            self.journal,
            self.directory,
            DIALECTS,
            self.http,
            lines,
            node=socket.gethostname(),
        )
        if self.phones is not None:
            self.phones.incoming = self.calls.incoming
        if self.sip is not None:
            self.sip.incoming = self.calls.incoming
        self.dispatcher.register(REDELIVERY_JOB, self.redeliveries.handle)
        self.dispatcher.register(INBOUND_JOB, self.interpreter.handle_inbound)
        self.dispatcher.register(STEP_JOB, self.interpreter.handle_step)
        # Singleton carriers are started by whichever worker holds their lease.
        leases = Leases(self.sessions, owner=owner, seconds=settings.carrier_lease_seconds)
        self.singletons = [
            SingletonCarrier(carrier, leases, self.messaging)
            for carrier in self.router.carriers
            if carrier.singleton
        ]
        self._worker: asyncio.Task[None] | None = None
        self.bootstrap_account: Account | None = None
        self._sqlite_lock: IO[bytes] | None = None

    def wake_workers(self) -> None:
        """Look for new jobs and parked messages now."""
        self.dispatcher.wake()
        self.messaging.wake()

    @property
    def runs_workers(self) -> bool:
        return self.settings.role in ("all", "worker") and self.pipeline is None

    @property
    def serves_api(self) -> bool:
        return self.settings.role in ("all", "api") and not self._pipeline_process

    async def start(self) -> None:
        check_layout(self.settings)
        if self._pipeline_process:
            # The API process has migrated and holds the server's lock; the pipeline's own
            # lock waits for a previous pipeline process that is still exiting.
            from verbal.processes import hold_pipeline_lock

            database = sqlite_file(self.settings.database_url)
            if database is not None:
                self._sqlite_lock = hold_pipeline_lock(database)
        else:
            if self.settings.is_sqlite:
                self._sqlite_lock = hold_sqlite_lock(self.settings.database_url)
            if not self._schema_ready:
                await migrate(self.engine)
            self.bootstrap_account = await self._bootstrap()
            # Calls die with the process that held them: end those a previous run left (on
            # SQLite every call was this server's; on PostgreSQL, this host's).
            node = None if self.settings.is_sqlite else self.calls.node
            ended = await recover_calls(self.sessions, node)
            if ended:
                log.info("ended %d calls left unfinished by the previous run", ended)
            if self.sip is not None:
                # Calls live in the process that serves the Calls APIs: this one.
                await self.sip.ua.start()
                log.info("SIP: listening on %s", self.sip.ua.bound)
        if self.settings.is_sqlite and self.runs_workers:
            # One process owns a SQLite file: leases left by a crashed run are ours to undo.
            released = await self.queue.release_leases(everyone=True)
            if released:
                log.info("resuming %d jobs left in flight by the previous run", released)
            await self.messaging.recover()
        if self.pipeline is not None:
            await self.pipeline.start()
        if not self.runs_workers:
            # The sandbox API is served here, the carriers run elsewhere (the pipeline
            # process, or worker nodes): handsets' texts are recorded here, with the job
            # that runs their app.
            for carrier in self.router.carriers:
                if isinstance(carrier, SandboxCarrier):
                    carrier.take_texts(self.messaging)
            return
        if self.settings.smsc_enabled and self.smsc is None:
            raise SmscUnavailable("the SMSC is the sandbox's front door: enable the sandbox too")
        if self.smsc is not None:
            try:
                await self.smsc.start()
            except OSError as exc:
                raise SmscUnavailable(
                    f"the sandbox SMSC cannot listen on {self.settings.smsc_host}:"
                    f"{self.settings.smsc_port}: {exc.strerror or exc}"
                ) from None
        # The pipeline first: a carrier may report receipts the moment it starts.
        await self.messaging.start()
        for carrier in self.router.carriers:
            if not carrier.singleton:
                await carrier.start(self.messaging)
        for singleton in self.singletons:
            singleton.start()
        if self.notifications is not None:
            self.notifications.start()
        self._worker = asyncio.create_task(self.dispatcher.run(), name="dispatcher")

    async def _bootstrap(self) -> Account | None:
        """On an empty database, create the first account; return it (only then)."""
        if await self.directory.count_accounts():
            return None
        return await self.directory.create_account(
            "Owner",
            sid=self.settings.bootstrap_account_sid,
            auth_token=self.settings.bootstrap_auth_token.get_secret_value(),
        )

    async def stop(self) -> None:
        """Stop claiming, let jobs in flight finish within the deadline, hand back leases."""
        await self.calls.stop()
        if self.phones is not None:
            await self.phones.stop()
        if self.sip is not None:
            await self.sip.stop()
            await self.sip.ua.close()
        if self._worker is not None:
            await self.dispatcher.stop(self.settings.shutdown_deadline_seconds)
            await cancel_and_wait(self._worker)
            await self.messaging.stop(self.settings.shutdown_deadline_seconds)
            if self.smsc is not None:
                await self.smsc.stop()
            for singleton in self.singletons:
                await singleton.stop()
            for carrier in self.router.carriers:
                if not carrier.singleton:
                    await carrier.stop()
        if self.notifications is not None:
            await self.notifications.stop()
        if self.pipeline is not None:
            await self.pipeline.stop(self.settings.shutdown_deadline_seconds)
        await self.close()

    @property
    def dispatching(self) -> bool:
        """Whether this process's workers are running (for readiness checks)."""
        return self._worker is not None and not self._worker.done()

    async def metrics(self) -> bytes:
        """This server's metrics in the Prometheus text format: its process's, and its
        pipeline process's where it has one."""
        from prometheus_client import generate_latest

        own = generate_latest()
        if self.pipeline is None:
            return own
        from verbal.processes import merge_metrics

        return merge_metrics(own, await self.pipeline.metrics())

    async def close(self) -> None:
        """Release connections and the SQLite lock (also for a runtime that never started)."""
        await self.journal.close()
        await self.http.aclose()
        await self.engine.dispose()
        if self._sqlite_lock is not None:
            self._sqlite_lock.close()
            self._sqlite_lock = None
