"""Settings, read once at start-up.

Sources, highest priority first: keyword arguments (the CLI's flags), `VERBAL_*` environment
variables, then an optional TOML file (`VERBAL_CONFIG`, default `./verbal.toml` when it exists).
Every setting has a default that runs Verbal on embedded parts: a SQLite file and the sandbox
network, nothing else to install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from verbal.webhooks.egress import EgressPolicy

DEFAULT_CONFIG_FILE = "verbal.toml"


def config_file() -> Path | None:
    """The TOML file to read, if any: `VERBAL_CONFIG`, else `./verbal.toml` when present."""
    named = os.environ.get("VERBAL_CONFIG")
    if named:
        return Path(named)
    default = Path(DEFAULT_CONFIG_FILE)
    return default if default.exists() else None


AlphabetName = Literal["gsm7", "latin1", "ucs2"]


def _automatic_alphabets() -> list[AlphabetName]:
    # GSM-7 when the text fits it, else UCS-2: what handsets and Twilio do.
    return ["gsm7", "ucs2"]


def _smpp_password(value: SecretStr) -> SecretStr:
    # A bind's password field holds 8 characters and its NUL (SMPP 3.4 §4.1.1), octets that
    # peers read as Latin-1.
    password = value.get_secret_value()
    if len(password) > 8 or not all(ord(char) < 256 for char in password):
        raise ValueError("an SMPP password has at most 8 characters, all of them Latin-1")
    return value


SmppPassword = Annotated[SecretStr, AfterValidator(_smpp_password)]


def _repeated(values: list[str]) -> list[str]:
    return sorted({value for value in values if values.count(value) > 1})


class SipTrunkSettings(BaseModel):
    """One SIP trunk calls go out on, as declared in `sip_trunks` (TOML ``[[sip_trunks]]``
    tables, or `VERBAL_SIP_TRUNKS` as a JSON list of objects with these keys)."""

    # Errors must not echo what was given: it holds the password.
    model_config = {"extra": "forbid", "hide_input_in_errors": True}

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    port: int = Field(5060, ge=1, le=65535)
    transport: Literal["udp", "tcp"] = "udp"
    # Destination prefixes it carries (the longest match wins); none: every number.
    prefixes: list[str] = Field(default_factory=list)
    # Answers to the trunk's digest challenges, when it asks.
    username: str | None = None
    password: SecretStr = Field(SecretStr(""))


class SmppCarrierSettings(BaseModel):
    """One SMPP carrier, as declared in `carriers` (TOML ``[[carriers]]`` tables, or the
    `VERBAL_CARRIERS` variable as a JSON list of objects with these keys)."""

    # Errors must not echo what was given: it holds the password.
    model_config = {"extra": "forbid", "hide_input_in_errors": True}

    name: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    host: str
    port: int = Field(2775, ge=1, le=65535)
    system_id: str = Field(max_length=15)
    password: SmppPassword = Field(SecretStr(""))
    system_type: str = Field("", max_length=12)
    # One worker at a time holds this carrier's binds (the SMSC limits how many binds an
    # account may have): the others leave its messages to that worker, and take over when
    # its lease (carrier_lease_seconds) runs out.
    singleton: bool = False
    # Binds (connections) per worker process, and whether each is one transceiver ("trx")
    # or a transmitter and a receiver ("tx_rx").
    binds: int = Field(1, ge=1, le=64)
    bind_mode: Literal["trx", "tx_rx"] = "trx"
    # Requests awaiting a response on one bind; carriers commonly allow 10.
    window: int = Field(10, ge=1, le=1000)
    # Messages per second to this carrier, across all workers (0: no cap), and submit_sm
    # per second on each bind (0: no cap).
    throughput: float = Field(0.0, ge=0)
    bind_throughput: float = Field(0.0, ge=0)
    # Routing: destination prefixes (none: every number), sender numbers or prefixes
    # (none: any sender), and priority (lower is tried first).
    prefixes: list[str] = Field(default_factory=list)
    senders: list[str] = Field(default_factory=list)
    priority: int = 100
    # Alphabets to try, in order, and what data_coding 0 means at this SMSC.
    alphabets: list[AlphabetName] = Field(default_factory=_automatic_alphabets, min_length=1)
    default_alphabet: Literal["gsm7", "latin1"] = "gsm7"
    gsm7_packed: bool = False
    long_messages: Literal["udh", "udh16", "sar", "payload"] = "udh"
    registered_delivery: int = Field(1, ge=0, le=255)
    service_type: str = Field("", max_length=5)
    enquire_link_seconds: float = Field(30.0, gt=0)
    response_timeout_seconds: float = Field(30.0, gt=0)
    connect_timeout_seconds: float = Field(10.0, gt=0)
    reconnect_min_seconds: float = Field(1.0, gt=0)
    reconnect_max_seconds: float = Field(60.0, gt=0)
    throttle_pause_seconds: float = Field(1.0, gt=0)
    # How long a message waits for a bind before the next carrier is tried.
    bind_wait_seconds: float = Field(5.0, gt=0)
    # How long a long inbound text waits for its missing parts.
    mo_timeout_seconds: float = Field(60.0, gt=0)
    # How long a receipt waits for its message to be recorded.
    receipt_wait_seconds: float = Field(60.0, gt=0)


class SmscEsmeSettings(BaseModel):
    """An ESME that may bind to the sandbox's SMSC, as declared in `smsc_esmes` (TOML
    ``[[smsc_esmes]]`` tables, or `VERBAL_SMSC_ESMES` as a JSON list of objects with these
    keys). See docs/sandbox.md."""

    # Errors must not echo what was given: it holds the password.
    model_config = {"extra": "forbid", "hide_input_in_errors": True}

    system_id: str = Field(min_length=1, max_length=15)
    password: SmppPassword = Field(min_length=1)
    # The account whose sandbox the ESME plays in: its rules, its handsets' inboxes.
    # Empty: the database's only account.
    account_sid: str = ""
    # Numbers (or globs such as +1555000*) whose handsets' texts go to this ESME.
    numbers: list[str] = Field(default_factory=list)

    @field_validator("system_id")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not (value.isascii() and value.isprintable()):
            raise ValueError("a system_id is printable ASCII")
        return value


class Settings(BaseSettings):
    # Errors must not echo what was given: carriers' passwords and tokens are in it.
    model_config = SettingsConfigDict(
        env_prefix="VERBAL_", extra="ignore", hide_input_in_errors=True
    )

    database_url: str = Field(
        "sqlite+aiosqlite:///verbal.db",
        description="SQLAlchemy URL: a SQLite file by default; postgresql://... to scale out.",
    )
    # PostgreSQL connections this process keeps (and as many again under bursts). Every
    # node counts against the server's max_connections (100 by default).
    database_pool_size: int = Field(10, ge=1, le=200)
    # SQLite: at most this many concurrent transactions share one commit (group commit, see
    # verbal/store/group_commit.py); 1 commits each on its own.
    sqlite_group_commit: int = Field(64, ge=1, le=1000)
    host: str = "127.0.0.1"
    port: int = 8080
    # How long the HTTP server waits for a connection's next request, for a request's head
    # once it started, and for its body; then it closes the connection (verbal/api/serving.py).
    http_keep_alive_seconds: float = Field(5.0, gt=0)
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    http_body_timeout_seconds: float = Field(30.0, gt=0)
    # Connections and requests in progress at once; beyond, requests answer 503. 0: no limit.
    http_max_connections: int = Field(1000, ge=0)
    # Requests worked on at once; a connection's next request beyond waits, unread, for one
    # to finish (verbal/api/serving.py). 0: no limit.
    http_requests_in_flight: int = Field(64, ge=0)
    public_url: str = Field(
        "",
        description="The server's URL as users reach it, shown in printed instructions; "
        "defaults to http://HOST:PORT.",
    )
    log_level: str = "info"
    # "text" for people, "json" (one object per line, with message and session ids) for
    # log collectors.
    log_format: Literal["text", "json"] = "text"
    # What this process does: "api" serves the REST APIs, "worker" runs the queue and holds
    # the carriers, "all" does both. Several api and worker processes may share one
    # PostgreSQL database; a SQLite file is served by one `verbal serve` with role "all".
    role: Literal["all", "api", "worker"] = "all"
    # On SQLite, `verbal serve` runs the API in its own process and forks a second one for
    # the pipeline (carriers, workers, callbacks, the sandbox), so that a server uses two
    # cores; 1 keeps everything in one process (docs/architecture.md, "Two processes").
    sqlite_processes: int = Field(2, ge=1, le=2)

    # Dispatch: how many jobs run at once in this process, and how long a claimed job is
    # protected from other workers before it is considered abandoned.
    worker_concurrency: int = 64
    job_lease_seconds: float = 60.0
    idle_poll_seconds: float = 1.0
    # On PostgreSQL, workers are woken by LISTEN/NOTIFY when jobs are added; they still look
    # this often, to pick up jobs whose worker died and whose lease has run out.
    notified_poll_seconds: float = 10.0
    # On shutdown, jobs in flight get this long to finish before their leases are handed back.
    shutdown_deadline_seconds: float = 10.0
    # Admission control: messages in progress in one process (accepted and not yet done with:
    # submitted, receipted and their callbacks settled) beyond which the APIs answer 429
    # (Twilio 20429) until it drains; 0 admits without limit.
    admission_limit: int = Field(2_000, ge=0)
    # A singleton carrier's lease: renewed every third of this; a dead holder's binds are
    # taken over by another worker within it.
    carrier_lease_seconds: float = Field(15.0, ge=1.0)

    # Carrier submission.
    submit_timeout_seconds: float = 10.0
    submit_retry_base_seconds: float = 1.0
    submit_retry_max_seconds: float = 300.0
    validity_period_seconds: int = 36000  # Twilio's default and maximum: 10 hours
    # How far ahead SendAt may be: Twilio's 5 minutes to 35 days by default. Lower the
    # minimum in development to see scheduled messages go out without waiting.
    schedule_min_lead_seconds: float = 300.0
    schedule_max_lead_seconds: float = 35 * 86400.0

    # Webhooks (status callbacks).
    webhook_timeout_seconds: float = 15.0
    webhook_max_attempts: int = 8
    webhook_retry_base_seconds: float = 2.0
    webhook_retry_max_seconds: float = 600.0

    # Apps: how long to wait for an app's document.
    app_timeout_seconds: float = 15.0

    # The egress policy for every outbound request (app fetches, redirects, status
    # callbacks): networks (`10.1.0.0/16`), addresses or host names (with their subdomains)
    # allowed or denied; link-local and cloud metadata addresses and names are always denied
    # unless allowed here. Loopback and private networks are allowed unless switched off,
    # as a multi-tenant server should (README, "Egress policy").
    egress_allow: list[str] = Field(default_factory=list)
    egress_deny: list[str] = Field(default_factory=list)
    egress_allow_loopback: bool = True
    egress_allow_private: bool = True

    @field_validator("egress_allow", "egress_deny")
    @classmethod
    def _egress_entries(cls, entries: list[str]) -> list[str]:
        EgressPolicy.from_entries(entries)  # a bad entry fails the start, not a request
        return entries

    # Sandbox network: numbers starting with any of these prefixes are virtual handsets.
    sandbox_enabled: bool = True
    sandbox_prefixes: list[str] = Field(default_factory=lambda: ["+1555"])
    sandbox_rate_per_second: float = 0.0  # 0 means unlimited
    # The sandbox's SMSC: ESMEs bind to it to use the sandbox network over SMPP 3.4. It runs
    # in the worker process (role all or worker) that has it enabled.
    smsc_enabled: bool = False
    smsc_host: str = "127.0.0.1"
    smsc_port: int = Field(2775, ge=0, le=65535)
    smsc_esmes: list[SmscEsmeSettings] = Field(default_factory=list)
    # deliver_sm awaiting a response, per bind; binds at once; keepalive and timeouts.
    smsc_window: int = Field(10, ge=1, le=1000)
    smsc_max_connections: int = Field(200, ge=1)
    smsc_max_binds_per_esme: int = Field(10, ge=1)
    smsc_enquire_link_seconds: float = Field(30.0, gt=0)
    smsc_response_timeout_seconds: float = Field(30.0, gt=0)
    smsc_idle_timeout_seconds: float = Field(300.0, gt=0)
    # How long the parts of a long message may take to all come.
    smsc_parts_timeout_seconds: float = Field(300.0, gt=0)
    # Failed binds from one address or for one system_id before binds are held back, and the
    # first and longest delay (verbal/carriers/smpp/failed_binds.py).
    smsc_failed_binds_allowed: int = Field(3, ge=1)
    smsc_failed_bind_delay_seconds: float = Field(1.0, gt=0)
    smsc_failed_bind_max_delay_seconds: float = Field(16.0, gt=0)

    @field_validator("smsc_esmes")
    @classmethod
    def _system_ids_unique(cls, esmes: list[SmscEsmeSettings]) -> list[SmscEsmeSettings]:
        repeated = _repeated([esme.system_id for esme in esmes])
        if repeated:
            raise ValueError(f"system_ids must be unique; repeated: {', '.join(repeated)}")
        return esmes

    # Messages per second from any one sender number, across all workers (0: unlimited).
    sender_rate_per_second: float = 0.0

    # Real carriers, beside the sandbox (see SmppCarrierSettings and docs/carriers.md).
    carriers: list[SmppCarrierSettings] = Field(default_factory=list)
    # Calls over SIP (docs/voice.md): where Verbal's SIP user agent listens ("host:port";
    # empty: no SIP unless trunks are declared, then an ephemeral port on 127.0.0.1), and the
    # trunks calls go out on.
    sip_listen: str = ""
    sip_trunks: list[SipTrunkSettings] = Field(default_factory=list)
    # How often workers write their binds' state for `verbal carriers list`.
    carrier_status_seconds: float = Field(5.0, gt=0)

    @field_validator("carriers")
    @classmethod
    def _names_unique(cls, carriers: list[SmppCarrierSettings]) -> list[SmppCarrierSettings]:
        names = [carrier.name for carrier in carriers]
        if "sandbox" in names:
            raise ValueError("'sandbox' names the built-in sandbox carrier; choose another name")
        repeated = _repeated(names)
        if repeated:
            raise ValueError(f"carrier names must be unique; repeated: {', '.join(repeated)}")
        return carriers

    # First start: the account created on an empty database may be given fixed credentials,
    # which is how scripts and the demo get known credentials.
    bootstrap_account_sid: str = ""
    bootstrap_auth_token: SecretStr = SecretStr("")

    max_request_bytes: int = 1024 * 1024

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = config_file()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def egress_policy(self) -> EgressPolicy:
        return EgressPolicy.from_entries(
            self.egress_allow,
            self.egress_deny,
            allow_loopback=self.egress_allow_loopback,
            allow_private=self.egress_allow_private,
        )

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
