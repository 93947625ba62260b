"""Plivo's Application and Number resources (v1), as the `plivo` SDK (4.x) calls them.

They live beside the Message API under `/v1/Account/{auth_id}/` and share its route class
(every failure is Plivo's `{"api_id", "error"}`), authentication, body parsing and paging
(`verbal.api.plivo`). Both are views of the directory's rows, so an application created here
is the same one the CLI and the other platforms' APIs see.

An application's URLs map onto Verbal's columns (`message_url` answers the number's texts,
`answer_url`, `fallback_answer_url` and `hangup_url` are kept for voice); Plivo's other
settings (`default_number_app`, `public_uri`, ...) are kept in `extra` and shown back.

Plivo's `app_id` is a string of decimal digits. A Verbal application SID is `AP` and 32 hex
digits, 128 bits, so its app_id is that number in decimal: deterministic and reversible.
Wherever an app_id is read, the `AP…` SID is accepted too, so SIDs from the CLI work.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import pathlib
import re
from collections.abc import Mapping
from typing import Annotated, Any

import phonenumbers
from fastapi import APIRouter, Path, Query, Request, Response
from phonenumbers import PhoneNumberType
from sqlalchemy import ColumnElement, false, true

from verbal.api import lookups
from verbal.api.auth import runtime
from verbal.api.paging import ListQuery
from verbal.api.plivo import (
    PREFIX,
    Filter,
    OwnAccount,
    PageParams,
    PlivoError,
    PlivoRoute,
    api_id,
    as_e164,
    list_answer,
    plivo_number,
    read_page,
    request_params,
    text_param,
)
from verbal.dialects.plivo import NO_CHARGE
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.service import is_http_url
from verbal.store.directory import AlreadyExists
from verbal.store.models import Account, Application, PhoneNumber

router = APIRouter(prefix=PREFIX, tags=["Plivo Applications and Numbers"], route_class=PlivoRoute)

AppId = Annotated[str, Path(description="The application's app_id (digits) or SID (AP…).")]
NumberPath = Annotated[str, Path(description="One of the account's numbers, e.g. 15550001000.")]

# Plivo's parameter -> the Application column it sets.
URL_PARAMS = {
    "message_url": "sms_url",
    "answer_url": "voice_url",
    "fallback_answer_url": "voice_fallback_url",
    "hangup_url": "status_callback",
}
METHOD_PARAMS = {
    "message_method": "sms_method",
    "answer_method": "voice_method",
    "fallback_method": "voice_fallback_method",
    "hangup_method": "status_callback_method",
}
# Plivo-only settings kept in `extra`, with Plivo's defaults.
FLAGS = {
    "default_number_app": False,
    "default_endpoint_app": False,
    "log_incoming_messages": True,
    "public_uri": False,
}
NAME_LENGTH = 64  # the friendly_name column
# Each number added is its own transaction: a bound keeps one request from holding the API.
MAX_NUMBERS = 1000
SERVICES = ("sms", "voice", "mms")
NUMBER_TYPES = {PhoneNumberType.TOLL_FREE: "tollfree", PhoneNumberType.MOBILE: "mobile"}
_APP_ID = re.compile(r"[0-9]{1,39}")
_SID_HEX = re.compile(r"[0-9a-f]{32}")
_E164 = re.compile(r"\+[0-9]{1,31}")


# -- ids ----------------------------------------------------------------------------------------


def app_id_of(sid: str) -> str:
    """The app_id Plivo clients see for an application SID: its 128 bits in decimal."""
    return str(int(sid[2:], 16))


def sid_of(app_id: str) -> str | None:
    """The application SID an app_id (or the SID itself) names; None if it names none."""
    if app_id.startswith("AP") and _SID_HEX.fullmatch(app_id[2:]):
        return app_id
    if _APP_ID.fullmatch(app_id) and int(app_id) < 1 << 128:
        return f"AP{int(app_id):032x}"
    return None


def application_uri(auth_id: str, sid: str) -> str:
    return f"{PREFIX}/{auth_id}/Application/{app_id_of(sid)}/"


# -- parameters ---------------------------------------------------------------------------------


def _refuse_async(params: Mapping[str, Any]) -> None:
    """Plivo answers a request with `callback_url` at once and posts the outcome later;
    Verbal answers every request synchronously, so it says so rather than never calling."""
    if params.get("callback_url"):
        raise PlivoError(400, "callback_url is not supported: requests are answered directly")


def _url_param(params: Mapping[str, Any], name: str) -> str | None:
    """An http(s) URL, or None for an empty one (which clears the setting)."""
    url = text_param(params, name)
    if not url:
        return None
    if not is_http_url(url):
        raise PlivoError(400, f"invalid {name}: {url!r} is not an http or https URL")
    return url


def _method_param(params: Mapping[str, Any], name: str) -> str:
    method = (text_param(params, name) or "").upper()
    if method not in ("GET", "POST"):
        raise PlivoError(400, f"invalid {name}: must be GET or POST")
    return method


def _flag_param(params: Mapping[str, Any], name: str) -> bool:
    """A boolean: JSON's true/false as the SDK sends them, or "true"/"false" from a form."""
    value = params[name]
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise PlivoError(400, f"invalid {name}: must be true or false")


def _name_param(params: Mapping[str, Any], name: str) -> str | None:
    value = text_param(params, name)
    if value is not None and len(value) > NAME_LENGTH:
        raise PlivoError(400, f"invalid {name}: at most {NAME_LENGTH} characters")
    return value


def _application_settings(params: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """The Application columns that `params` set; `extra` is merged, not replaced, so the
    settings other APIs keep there survive."""
    settings: dict[str, Any] = {}
    for name, column in URL_PARAMS.items():
        if name in params:
            settings[column] = _url_param(params, name)
    for name, column in METHOD_PARAMS.items():
        if params.get(name) is not None:
            settings[column] = _method_param(params, name)
    merged = dict(extra)
    for name in FLAGS:
        if params.get(name) is not None:
            merged[name] = _flag_param(params, name)
    if "subaccount" in params:
        merged["subaccount"] = text_param(params, "subaccount") or None
    settings["extra"] = merged
    return settings


# -- applications -------------------------------------------------------------------------------


def application_json(application: Application, auth_id: str) -> dict[str, Any]:
    extra = application.extra or {}

    def flag(name: str) -> bool:
        return bool(extra.get(name, FLAGS[name]))

    app_id = app_id_of(application.sid)
    return {
        "answer_method": application.voice_method,
        "answer_url": application.voice_url,
        "app_id": app_id,
        "app_name": application.friendly_name,
        "application_type": "XML",
        "default_app": flag("default_number_app"),
        "default_endpoint_app": flag("default_endpoint_app"),
        "enabled": True,
        "fallback_answer_url": application.voice_fallback_url,
        "fallback_method": application.voice_fallback_method,
        "hangup_method": application.status_callback_method,
        "hangup_url": application.status_callback,
        "log_incoming_message": flag("log_incoming_messages"),
        "message_method": application.sms_method,
        "message_url": application.sms_url,
        "public_uri": flag("public_uri"),
        "resource_uri": application_uri(auth_id, application.sid),
        # Verbal has no SIP side that could dial an application.
        "sip_uri": None,
        "sub_account": extra.get("subaccount"),
    }


async def _application(
    request: Request, account: Account, app_id: str, *, status: int = 404, name: str = "app_id"
) -> Application:
    """The account's listed application that `app_id` names. Not found is 404 for the path's
    own resource and 400 for an application a parameter refers to."""
    sid = sid_of(app_id)
    application = await lookups.account_application(request, account, sid) if sid else None
    if application is None:
        if status == 404:
            raise PlivoError(404, "not found")
        raise PlivoError(status, f"invalid {name}: no application {app_id} on this account")
    return application


async def _make_sole(request: Request, account: Account, chosen: Application) -> None:
    """An account has one default number app and one default endpoint app: choosing one
    unsets the flag on the others."""
    directory = runtime(request).directory
    flags = [f for f in ("default_number_app", "default_endpoint_app") if chosen.extra.get(f)]
    if not flags:
        return
    for other in await directory.applications(account):
        if other.id != chosen.id and any(other.extra.get(f) for f in flags):
            extra = {**other.extra, **dict.fromkeys(flags, False)}
            await directory.update_application(other, {"extra": extra})


async def _default_number_app(request: Request, account: Account) -> Application | None:
    applications = await runtime(request).directory.applications(account)
    return next((a for a in applications if a.extra.get("default_number_app")), None)


@router.post("/{auth_id}/Application/", status_code=201, summary="Create an application")
async def create_application(request: Request, account: OwnAccount) -> dict[str, Any]:
    params = await request_params(request)
    _refuse_async(params)
    name = _name_param(params, "app_name")
    if not name:
        raise PlivoError(400, "Missing mandatory parameter: app_name")
    settings = _application_settings(params, {})
    application = await runtime(request).directory.create_application(
        account, name, dialect="plivo", **settings
    )
    await _make_sole(request, account, application)
    return {"api_id": api_id(), "app_id": app_id_of(application.sid), "message": "created"}


@router.get("/{auth_id}/Application/{app_id}/", summary="Get an application")
async def get_application(request: Request, account: OwnAccount, app_id: AppId) -> dict[str, Any]:
    _refuse_async(request.query_params)
    application = await _application(request, account, app_id)
    return {"api_id": api_id(), **application_json(application, account.plivo_auth_id)}


@router.get("/{auth_id}/Application/", summary="List applications, oldest first")
async def list_applications(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    app_name: Filter = None,
    subaccount: Filter = None,
) -> dict[str, Any]:
    _refuse_async(request.query_params)
    listing = ListQuery(lookups.applications(account))
    listing.filter("app_name", app_name, lambda name: Application.friendly_name == name)
    # The subaccount is kept in the `extra` JSON, which each database queries its own way.
    listing.filter(
        "subaccount",
        subaccount,
        keep=lambda a: (a.extra or {}).get("subaccount") == subaccount,
    )
    page = await read_page(request, listing, paging, Application.id)
    auth_id = account.plivo_auth_id
    return list_answer(
        f"{PREFIX}/{auth_id}/Application/", page, [application_json(a, auth_id) for a in page.rows]
    )


@router.post("/{auth_id}/Application/{app_id}/", status_code=202, summary="Update an application")
async def update_application(
    request: Request, account: OwnAccount, app_id: AppId
) -> dict[str, Any]:
    params = await request_params(request)
    _refuse_async(params)
    application = await _application(request, account, app_id)
    settings = _application_settings(params, application.extra or {})
    try:
        updated = await runtime(request).directory.update_application(application, settings)
    except LookupError:
        raise PlivoError(404, "not found") from None  # deleted meanwhile
    await _make_sole(request, account, updated)
    return {"api_id": api_id(), "message": "changed"}


@router.delete("/{auth_id}/Application/{app_id}/", status_code=204, summary="Delete an application")
async def delete_application(request: Request, account: OwnAccount, app_id: AppId) -> Response:
    """Numbers using the application are left without one. Verbal has no endpoints, so
    `cascade` and `new_endpoint_application` have nothing to act on; they are checked all
    the same, so that a mistake in them is not silently accepted."""
    params = {**request.query_params, **await request_params(request)}
    _refuse_async(params)
    if params.get("cascade") is not None:
        _flag_param(params, "cascade")
    application = await _application(request, account, app_id)
    replacement = text_param(params, "new_endpoint_application")
    if replacement:
        await _application(
            request, account, replacement, status=400, name="new_endpoint_application"
        )
    await runtime(request).directory.delete_application(application)
    return Response(status_code=204)


# -- numbers ------------------------------------------------------------------------------------


def _parsed(number: str) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(number)
    except phonenumbers.NumberParseException:
        return None


def number_type(number: str) -> str:
    """Plivo's `number_type`, from the numbering plan (fictional numbers count as local)."""
    parsed = _parsed(number)
    if parsed is None:
        return "local"
    return NUMBER_TYPES.get(phonenumbers.number_type(parsed), "local")


def country_name(parsed: phonenumbers.PhoneNumber) -> str:
    """The country a number belongs to, in English; "" when not exactly one country claims it.

    The same answer as `phonenumbers.geocoder.country_name_for_number(parsed, "en")`.
    """
    regions = phonenumbers.region_codes_for_country_code(parsed.country_code)
    if len(regions) > 1:
        regions = tuple(r for r in regions if phonenumbers.is_valid_number_for_region(parsed, r))
    return _english_region_names().get(regions[0], "") if len(regions) == 1 else ""


@functools.cache
def _english_region_names() -> dict[str, str]:
    """Region code -> English name, from phonenumbers' table of region names, read alone.

    Not through `phonenumbers.geocoder`: importing it also loads `phonenumbers.geodata`, the
    place names of every number prefix in every language (about 100 MiB of RSS and 0.6 s), for
    this one column. The region names are a file of their own, which phonenumbers offers no
    public way to read by itself; read here on first use, it costs about 1 MiB and 50 ms.
    """
    location = pathlib.Path(phonenumbers.__file__).parent / "geodata" / "locale.py"
    loader = importlib.machinery.SourceFileLoader("phonenumbers.geodata.locale", str(location))
    locale = importlib.util.module_from_spec(importlib.machinery.ModuleSpec(loader.name, loader))
    loader.exec_module(locale)
    names = {}
    for region, by_language in locale.LOCALE_DATA.items():
        name = by_language.get("en", "")
        if name.startswith("*"):  # "*xx": the same name as in language xx
            name = by_language.get(name[1:], "")
        names[region] = name
    return names


def number_json(
    number: PhoneNumber, application_sid: str | None, carrier: str | None, auth_id: str
) -> dict[str, Any]:
    parsed = _parsed(number.number)
    country = country_name(parsed) if parsed else ""
    digits = plivo_number(number.number)
    return {
        "active": True,
        "added_on": number.date_created.date().isoformat(),
        # A number added without a name is named after itself; Plivo shows no alias then.
        "alias": None if number.friendly_name == number.number else number.friendly_name,
        "application": application_uri(auth_id, application_sid) if application_sid else None,
        "carrier": carrier,
        "city": None,
        "cnam_lookup": "disabled",
        "compliance_application_id": None,
        "compliance_status": None,
        "country": country or None,
        # Verbal carries texts, media and calls.
        "mms_enabled": True,
        "mms_rate": NO_CHARGE,
        "monthly_rental_rate": NO_CHARGE,
        "number": digits,
        "number_type": number_type(number.number),
        "region": None,
        "renewal_date": None,
        "resource_uri": f"{PREFIX}/{auth_id}/Number/{digits}/",
        "sms_enabled": True,
        "sms_rate": NO_CHARGE,
        "sub_account": None,
        "tendlc_campaign_id": None,
        "tendlc_registration_status": None,
        "toll_free_sms_verification": None,
        "voice_enabled": True,
        "voice_rate": NO_CHARGE,
    }


def _carrier(request: Request, number: str) -> str | None:
    carrier = runtime(request).router.route(number)
    return carrier.name if carrier else None


async def _numbers_json(
    request: Request, numbers: list[PhoneNumber], auth_id: str
) -> list[dict[str, Any]]:
    applications = await lookups.applications_by_id(request, [n.application_id for n in numbers])
    sids = {id_: application.sid for id_, application in applications.items()}
    return [
        number_json(
            n,
            sids.get(n.application_id) if n.application_id else None,
            _carrier(request, n.number),
            auth_id,
        )
        for n in numbers
    ]


async def _number(request: Request, account: Account, raw: str) -> PhoneNumber:
    e164 = as_e164(raw)
    number = await runtime(request).directory.number(e164) if _E164.fullmatch(e164) else None
    if number is None or number.account_id != account.id:
        raise PlivoError(404, "not found")
    return number


def _numbers_param(params: Mapping[str, Any]) -> list[str]:
    """`numbers` as E.164: a comma-separated string as the SDK sends it, or a JSON list."""
    raw = params.get("numbers")
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise PlivoError(400, "numbers must be a string of numbers separated by commas")
    if len(items) > MAX_NUMBERS:
        raise PlivoError(400, f"numbers can hold at most {MAX_NUMBERS} numbers")
    numbers: list[str] = []
    for item in (item.strip() for item in items):
        if not item:
            continue
        try:
            numbers.append(to_e164(as_e164(item)))
        except InvalidNumber:
            raise PlivoError(400, f"invalid number {item!r}") from None
    if not numbers:
        raise PlivoError(400, "Missing mandatory parameter: numbers")
    return list(dict.fromkeys(numbers))


@router.post("/{auth_id}/Number/", status_code=202, summary="Add your own numbers")
async def add_numbers(request: Request, account: OwnAccount) -> dict[str, Any]:
    """Plivo's "add a number from your own carrier": the numbers join the account, attached
    to `app_id` or else to the account's default number app. `carrier` and `region` are
    required as Plivo requires them; Verbal routes by its own carriers, so it does not keep
    them, nor `number_type` (it is read from the numbering plan) or `subaccount`."""
    params = await request_params(request)
    _refuse_async(params)
    numbers = _numbers_param(params)
    for name in ("carrier", "region"):
        if not text_param(params, name):
            raise PlivoError(400, f"Missing mandatory parameter: {name}")
    app_id = text_param(params, "app_id")
    if app_id:
        application = await _application(request, account, app_id, status=400)
    else:
        application = await _default_number_app(request, account)
    directory = runtime(request).directory
    for number in numbers:
        if await directory.number(number) is not None:
            raise PlivoError(400, f"number {plivo_number(number)} is already in use")
    for number in numbers:
        try:
            row = await directory.add_number(account, number)
        except AlreadyExists:
            raise PlivoError(400, f"number {plivo_number(number)} is already in use") from None
        if application is not None:
            await directory.configure_number(
                row, application=application, voice_application=application
            )
    return {"api_id": api_id(), "message": "changed"}


def _starts_with(digits: str) -> ColumnElement[bool]:
    prefix = as_e164(digits)
    if not prefix[1:].isdigit():
        raise PlivoError(400, "invalid number_startswith: digits only")
    return PhoneNumber.number.startswith(prefix, autoescape=True)


def _services(services: str) -> ColumnElement[bool]:
    """Every Verbal number carries texts, media and calls: any list of services finds all."""
    wanted = {s.strip() for s in services.split(",") if s.strip()}
    if not wanted <= set(SERVICES):
        raise PlivoError(400, "invalid services: a comma-separated list of sms, voice, mms")
    return true()


@router.get("/{auth_id}/Number/", summary="List the account's numbers, oldest first")
async def list_numbers(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    kind: Annotated[str | None, Query(alias="type")] = None,
    number_startswith: Filter = None,
    alias: Filter = None,
    services: Filter = None,
    subaccount: Filter = None,
) -> dict[str, Any]:
    listing = ListQuery(lookups.numbers(account))
    listing.filter("number_startswith", number_startswith, _starts_with)
    listing.filter("alias", alias, lambda name: PhoneNumber.friendly_name == name)
    listing.filter("services", services, _services)
    # Verbal has no subaccounts: no number belongs to one.
    listing.filter("subaccount", subaccount, lambda _: false())
    # The kind is read from the numbering plan, not stored.
    listing.filter("type", kind, keep=lambda n: number_type(n.number) == kind)
    page = await read_page(request, listing, paging, PhoneNumber.id)
    auth_id = account.plivo_auth_id
    return list_answer(
        f"{PREFIX}/{auth_id}/Number/", page, await _numbers_json(request, page.rows, auth_id)
    )


@router.get("/{auth_id}/Number/{number}/", summary="Get one of the account's numbers")
async def get_number(request: Request, account: OwnAccount, number: NumberPath) -> dict[str, Any]:
    row = await _number(request, account, number)
    [shown] = await _numbers_json(request, [row], account.plivo_auth_id)
    return {"api_id": api_id(), **shown}


@router.post("/{auth_id}/Number/{number}/", status_code=202, summary="Update a number")
async def update_number(
    request: Request, account: OwnAccount, number: NumberPath
) -> dict[str, Any]:
    """`app_id` attaches an application to the number's texts and calls alike, as Plivo's one
    application per number does (an empty one detaches it); `alias` renames the number.
    `subaccount`, `verification_info` and `cnam_lookup` concern nothing Verbal does."""
    params = await request_params(request)
    _refuse_async(params)
    row = await _number(request, account, number)
    changes: dict[str, Any] = {}
    app_id = text_param(params, "app_id")
    if app_id is not None:
        application = await _application(request, account, app_id, status=400) if app_id else None
        changes.update(application=application, voice_application=application)
    alias = _name_param(params, "alias")
    if alias is not None:
        changes["friendly_name"] = alias or row.number
    try:
        await runtime(request).directory.configure_number(row, **changes)
    except LookupError:
        raise PlivoError(404, "not found") from None  # released meanwhile
    return {"api_id": api_id(), "message": "changed"}


@router.delete("/{auth_id}/Number/{number}/", status_code=204, summary="Remove a number")
async def delete_number(request: Request, account: OwnAccount, number: NumberPath) -> Response:
    """Plivo's unrent: the number leaves the account and stops routing."""
    row = await _number(request, account, number)
    await runtime(request).directory.release_number(row)
    return Response(status_code=204)
