"""Twilio's Accounts, IncomingPhoneNumbers and Applications (2010-04-01), as the SDK calls them.

Each resource is a view of the directory's rows (`verbal.store.directory`):

- an IncomingPhoneNumber is a `PhoneNumber`. Its URLs (SmsUrl, VoiceUrl, ...) live in the
  application the number owns, in the RCML dialect, and SmsApplicationSid attaches a shared
  application, which then answers instead: the engine routes to the attached application,
  else to the number's own URLs;
- an Application is a listed `Application`; those created here speak RCML;
- an Account is the caller's account: no account sees another.

Create and update read the form themselves (`RawForm`): Twilio gives an empty value a
meaning, "clear this URL" or "detach this application".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import phonenumbers
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from sqlalchemy import ColumnElement, false, select
from starlette.datastructures import FormData

from verbal.api import lookups
from verbal.api.auth import authenticated_account, runtime
from verbal.api.errors import ApiError, not_found
from verbal.api.paging import ListQuery
from verbal.api.twilio import (
    API_VERSION,
    INVALID_APPLICATION_SID,
    NO_NUL,
    PREFIX,
    FormParam,
    OwnAccount,
    PageParams,
    RawForm,
    account_application,
    form_body,
    form_text,
    keyset_page,
    page_json,
    twilio_date,
    well_formed_sid,
)
from verbal.messaging.addresses import InvalidNumber, to_e164
from verbal.messaging.service import is_http_url
from verbal.store.directory import KEEP, AlreadyExists, Keep
from verbal.store.models import Account, Application, PhoneNumber

router = APIRouter(prefix=f"/{API_VERSION}")

# Twilio's codes for these resources (https://www.twilio.com/docs/api/errors).
INVALID_URL = 21502
PHONE_NUMBER_INVALID = 21421
PHONE_NUMBER_UNAVAILABLE = 21422
# The columns' sizes: longer values are refused rather than cut.
MAX_NAME = 64

Kind = Literal["url", "method", "flag"]


@dataclass(frozen=True)
class Setting:
    """A Twilio parameter stored in an application: in a column, or in `extra` for a flag
    that Verbal keeps and shows back but does not act on."""

    param: str
    column: str
    kind: Kind
    description: str

    @property
    def form_param(self) -> FormParam:
        return FormParam(self.param, self.description)


ROUTING_SETTINGS = (
    Setting("SmsUrl", "sms_url", "url", "Where an incoming message's TwiML comes from."),
    Setting("SmsMethod", "sms_method", "method", "GET or POST (default)."),
    Setting("SmsFallbackUrl", "sms_fallback_url", "url", "Tried when SmsUrl fails."),
    Setting("SmsFallbackMethod", "sms_fallback_method", "method", "GET or POST (default)."),
    Setting("VoiceUrl", "voice_url", "url", "Where an incoming call's TwiML comes from."),
    Setting("VoiceMethod", "voice_method", "method", "GET or POST (default)."),
    Setting("VoiceFallbackUrl", "voice_fallback_url", "url", "Tried when VoiceUrl fails."),
    Setting("VoiceFallbackMethod", "voice_fallback_method", "method", "GET or POST (default)."),
    Setting(
        "StatusCallback", "status_callback", "url", "Where an incoming call's end is reported."
    ),
    Setting("StatusCallbackMethod", "status_callback_method", "method", "GET or POST (default)."),
    Setting("VoiceCallerIdLookup", "voice_caller_id_lookup", "flag", "true or false; stored."),
)
APPLICATION_ONLY_SETTINGS = (
    # Verbal keeps one status callback for the messages sent with an ApplicationSid; Twilio
    # has two names for it (SmsStatusCallback is the older), and the later one given wins.
    Setting(
        "SmsStatusCallback",
        "sms_status_callback",
        "url",
        "Status callbacks of messages sent with this ApplicationSid and no StatusCallback.",
    ),
    Setting(
        "MessageStatusCallback", "sms_status_callback", "url", "The same as SmsStatusCallback."
    ),
    Setting(
        "PublicApplicationConnectEnabled",
        "public_application_connect_enabled",
        "flag",
        "true (default) or false; stored.",
    ),
)
APPLICATION_SETTINGS = ROUTING_SETTINGS + APPLICATION_ONLY_SETTINGS
# What an unset flag reads as, as Twilio shows it.
FLAG_DEFAULTS = {"voice_caller_id_lookup": False, "public_application_connect_enabled": True}

FRIENDLY_NAME = FormParam("FriendlyName", f"A name of up to {MAX_NAME} characters.")
NUMBER_PARAMS = (
    FRIENDLY_NAME,
    FormParam("SmsApplicationSid", 'Attach an application for messages; "" detaches it.'),
    FormParam("VoiceApplicationSid", 'Attach an application for calls; "" detaches it.'),
    *(setting.form_param for setting in ROUTING_SETTINGS),
)
CLAIM_PARAMS = (
    FormParam("PhoneNumber", "The number to claim, in any format; kept in E.164."),
    *NUMBER_PARAMS,
)
APPLICATION_PARAMS = (FRIENDLY_NAME, *(setting.form_param for setting in APPLICATION_SETTINGS))


# -- reading settings -------------------------------------------------------------------------


def _setting_value(setting: Setting, value: str) -> Any:
    if setting.kind == "url":
        if value == "":
            return None  # "" clears the URL
        if not is_http_url(value):
            raise ApiError(
                400, INVALID_URL, f"{setting.param} {value!r} is not a valid http(s) URL"
            )
        return value
    if setting.kind == "method":
        method = value.upper() or "POST"
        if method not in ("GET", "POST"):
            raise ApiError(400, 20422, f"Invalid parameter {setting.param}: use GET or POST")
        return method
    if value.lower() not in ("true", "false"):
        raise ApiError(400, 20422, f"Invalid parameter {setting.param}: use true or false")
    return value.lower() == "true"


def read_settings(
    form: FormData, settings: Sequence[Setting], extra: Mapping[str, Any]
) -> dict[str, Any]:
    """The directory settings the form changes; flags are merged into `extra`."""
    columns: dict[str, Any] = {}
    flags: dict[str, Any] = {}
    for setting in settings:
        value = form.get(setting.param)
        if value is None:
            continue
        if not isinstance(value, str):
            raise ApiError(400, 20422, f"Invalid parameter {setting.param}: not text")
        target = flags if setting.kind == "flag" else columns
        target[setting.column] = _setting_value(setting, value)
    if flags:
        columns["extra"] = {**extra, **flags}
    return columns


def _flag(application: Application | None, name: str) -> bool:
    extra = application.extra if application is not None else {}
    return bool(extra.get(name, FLAG_DEFAULTS[name]))


async def _attached(
    request: Request, account: Account, form: FormData, param: str
) -> Application | Keep | None:
    """The application a *ApplicationSid parameter attaches: KEEP if absent, None for ""."""
    sid = form.get(param)
    if sid is None:
        return KEEP
    if sid == "":
        return None
    application = await account_application(request, account, sid) if isinstance(sid, str) else None
    if application is None:
        raise ApiError(
            400, INVALID_APPLICATION_SID, f"{param} {sid} is not an application of this account"
        )
    return application


# -- accounts ---------------------------------------------------------------------------------


def account_json(account: Account) -> dict[str, Any]:
    base = f"{PREFIX}/{account.sid}"
    return {
        # Twilio shows the token to whoever authenticated as the account.
        "auth_token": account.auth_token,
        "date_created": twilio_date(account.date_created),
        "date_updated": twilio_date(account.date_updated),
        "friendly_name": account.friendly_name,
        "owner_account_sid": account.sid,
        "sid": account.sid,
        "status": account.status,
        "subresource_uris": {
            name: f"{base}/{resource}.json"
            for name, resource in (
                ("applications", "Applications"),
                ("incoming_phone_numbers", "IncomingPhoneNumbers"),
                ("messages", "Messages"),
            )
        },
        "type": "Full",
        "uri": f"{base}.json",
    }


@router.get("/Accounts.json", summary="List accounts: the caller's own", tags=["Twilio Accounts"])
async def list_accounts(
    request: Request,
    account: Annotated[Account, Depends(authenticated_account)],
    paging: PageParams,
    friendly_name: Annotated[str | None, Query(alias="FriendlyName", pattern=NO_NUL)] = None,
    status: Annotated[str | None, Query(alias="Status", pattern=NO_NUL)] = None,
) -> dict[str, Any]:
    listing = ListQuery(select(Account).where(Account.id == account.id))
    listing.filter("FriendlyName", friendly_name, lambda name: Account.friendly_name == name)
    listing.filter("Status", status, lambda value: Account.status == value)
    page = await keyset_page(request, listing, Account.id, paging, newest_first=False)
    return page_json(
        f"/{API_VERSION}/Accounts.json", "accounts", [account_json(a) for a in page.rows], page
    )


@router.get("/Accounts/{AccountSid}.json", summary="Fetch the account", tags=["Twilio Accounts"])
async def fetch_account(account: OwnAccount) -> dict[str, Any]:
    return account_json(account)


# -- applications -----------------------------------------------------------------------------

APPLICATIONS = "/Accounts/{AccountSid}/Applications"
ApplicationSid = Annotated[
    str, Path(alias="ApplicationSid", description="The application's SID (AP…).")
]


def application_json(application: Application, account_sid: str) -> dict[str, Any]:
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "date_created": twilio_date(application.date_created),
        "date_updated": twilio_date(application.date_updated),
        "friendly_name": application.friendly_name,
        "message_status_callback": application.sms_status_callback,
        "sid": application.sid,
        "sms_fallback_method": application.sms_fallback_method,
        "sms_fallback_url": application.sms_fallback_url,
        "sms_method": application.sms_method,
        "sms_status_callback": application.sms_status_callback,
        "sms_url": application.sms_url,
        "status_callback": application.status_callback,
        "status_callback_method": application.status_callback_method,
        "uri": f"{PREFIX}/{account_sid}/Applications/{application.sid}.json",
        "voice_caller_id_lookup": _flag(application, "voice_caller_id_lookup"),
        "voice_fallback_method": application.voice_fallback_method,
        "voice_fallback_url": application.voice_fallback_url,
        "voice_method": application.voice_method,
        "voice_url": application.voice_url,
        "public_application_connect_enabled": _flag(
            application, "public_application_connect_enabled"
        ),
    }


async def _application(request: Request, account: Account, sid: str) -> Application:
    application = await account_application(request, account, sid)
    if application is None:
        raise not_found(f"{PREFIX}/{account.sid}/Applications/{sid}.json")
    return application


@router.post(
    APPLICATIONS + ".json",
    status_code=201,
    summary="Create an application (RCML/TwiML)",
    tags=["Twilio Applications"],
    openapi_extra=form_body(APPLICATION_PARAMS),
)
async def create_application(
    request: Request, account: OwnAccount, form: RawForm
) -> dict[str, Any]:
    name = form_text(form, "FriendlyName", max_length=MAX_NAME) or ""
    settings = read_settings(form, APPLICATION_SETTINGS, {})
    application = await runtime(request).directory.create_application(
        account, name, **{"dialect": "rcml", **settings}
    )
    return application_json(application, account.sid)


@router.get(
    APPLICATIONS + ".json", summary="List applications, oldest first", tags=["Twilio Applications"]
)
async def list_applications(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    friendly_name: Annotated[str | None, Query(alias="FriendlyName", pattern=NO_NUL)] = None,
) -> dict[str, Any]:
    listing = ListQuery(lookups.applications(account))
    listing.filter("FriendlyName", friendly_name, lambda name: Application.friendly_name == name)
    page = await keyset_page(request, listing, Application.id, paging, newest_first=False)
    return page_json(
        f"{PREFIX}/{account.sid}/Applications.json",
        "applications",
        [application_json(a, account.sid) for a in page.rows],
        page,
    )


@router.get(
    APPLICATIONS + "/{ApplicationSid}.json",
    summary="Fetch an application",
    tags=["Twilio Applications"],
)
async def fetch_application(
    request: Request, account: OwnAccount, sid: ApplicationSid
) -> dict[str, Any]:
    return application_json(await _application(request, account, sid), account.sid)


@router.post(
    APPLICATIONS + "/{ApplicationSid}.json",
    summary="Update an application",
    tags=["Twilio Applications"],
    openapi_extra=form_body(APPLICATION_PARAMS),
)
async def update_application(
    request: Request, account: OwnAccount, sid: ApplicationSid, form: RawForm
) -> dict[str, Any]:
    application = await _application(request, account, sid)
    settings = read_settings(form, APPLICATION_SETTINGS, application.extra)
    name = form_text(form, "FriendlyName", max_length=MAX_NAME)
    if name is not None:
        settings["friendly_name"] = name
    try:
        application = await runtime(request).directory.update_application(application, settings)
    except LookupError:
        # Deleted since it was read.
        raise not_found(f"{PREFIX}/{account.sid}/Applications/{sid}.json") from None
    return application_json(application, account.sid)


@router.delete(
    APPLICATIONS + "/{ApplicationSid}.json",
    status_code=204,
    summary="Delete an application; numbers attached to it are detached",
    tags=["Twilio Applications"],
)
async def delete_application(
    request: Request, account: OwnAccount, sid: ApplicationSid
) -> Response:
    application = await _application(request, account, sid)
    await runtime(request).directory.delete_application(application)
    return Response(status_code=204)


# -- incoming phone numbers -------------------------------------------------------------------

NUMBERS = "/Accounts/{AccountSid}/IncomingPhoneNumbers"
NumberSid = Annotated[
    str, Path(alias="IncomingPhoneNumberSid", description="The number's SID (PN…).")
]


def number_json(
    number: PhoneNumber, account_sid: str, applications: Mapping[int, Application]
) -> dict[str, Any]:
    """The number as Twilio shows it; `applications` holds those it refers to, by id."""
    own = applications.get(number.own_application_id or 0)

    def url(column: str) -> str:
        return (getattr(own, column) if own is not None else None) or ""

    def method(column: str) -> str:
        return getattr(own, column) if own is not None else "POST"

    def sid_of(application_id: int | None) -> str:
        attached = applications.get(application_id or 0)
        return attached.sid if attached is not None else ""

    return {
        "account_sid": account_sid,
        "address_sid": None,
        "address_requirements": "none",
        "api_version": API_VERSION,
        "beta": False,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": twilio_date(number.date_created),
        "date_updated": twilio_date(number.date_updated),
        "friendly_name": number.friendly_name,
        "identity_sid": None,
        "phone_number": number.number,
        "origin": "twilio",
        "sid": number.sid,
        "sms_application_sid": sid_of(number.application_id),
        "sms_fallback_method": method("sms_fallback_method"),
        "sms_fallback_url": url("sms_fallback_url"),
        "sms_method": method("sms_method"),
        "sms_url": url("sms_url"),
        "status_callback": url("status_callback"),
        "status_callback_method": method("status_callback_method"),
        "trunk_sid": None,
        "uri": f"{PREFIX}/{account_sid}/IncomingPhoneNumbers/{number.sid}.json",
        "voice_receive_mode": "voice",
        "voice_application_sid": sid_of(number.voice_application_id),
        "voice_caller_id_lookup": _flag(own, "voice_caller_id_lookup"),
        "voice_fallback_method": method("voice_fallback_method"),
        "voice_fallback_url": url("voice_fallback_url"),
        "voice_method": method("voice_method"),
        "voice_url": url("voice_url"),
        "emergency_status": "Inactive",
        "emergency_address_sid": None,
        "emergency_address_status": "unregistered",
        "bundle_sid": None,
        "status": "in-use",
        "type": "local",
    }


async def _numbers_json(
    request: Request, account: Account, numbers: Sequence[PhoneNumber]
) -> list[dict[str, Any]]:
    """Several numbers as Twilio shows them, with the applications they refer to read at once."""
    applications = await lookups.applications_by_id(
        request,
        [
            application_id
            for number in numbers
            for application_id in (
                number.application_id,
                number.own_application_id,
                number.voice_application_id,
            )
        ],
    )
    return [number_json(number, account.sid, applications) for number in numbers]


async def _number(request: Request, account: Account, sid: str) -> PhoneNumber:
    number = (
        await runtime(request).directory.number_by_sid(account, sid)
        if well_formed_sid("PN", sid)
        else None
    )
    if number is None:
        raise not_found(f"{PREFIX}/{account.sid}/IncomingPhoneNumbers/{sid}.json")
    return number


@dataclass(frozen=True)
class NumberChanges:
    """What a create or an update changes, all checked before anything changes."""

    friendly_name: str | None
    application: Application | Keep | None
    voice_application: Application | Keep | None
    own_settings: dict[str, Any]


async def _number_changes(
    request: Request, account: Account, form: FormData, own: Application | None
) -> NumberChanges:
    own_settings = read_settings(form, ROUTING_SETTINGS, own.extra if own is not None else {})
    if own_settings:
        # The number's own URLs answer with TwiML, whatever guess "auto" would make.
        own_settings["dialect"] = "rcml"
    return NumberChanges(
        friendly_name=form_text(form, "FriendlyName", max_length=MAX_NAME),
        application=await _attached(request, account, form, "SmsApplicationSid"),
        voice_application=await _attached(request, account, form, "VoiceApplicationSid"),
        own_settings=own_settings,
    )


async def _apply(
    request: Request, account: Account, number: PhoneNumber, changes: NumberChanges
) -> dict[str, Any]:
    """Make the changes to `number`; its JSON afterwards."""
    try:
        number = await runtime(request).directory.configure_number(
            number,
            friendly_name=KEEP if changes.friendly_name is None else changes.friendly_name,
            application=changes.application,
            voice_application=changes.voice_application,
            own_settings=changes.own_settings,
        )
    except LookupError:
        # Released, or the application deleted, since they were read.
        raise not_found(f"{PREFIX}/{account.sid}/IncomingPhoneNumbers/{number.sid}.json") from None
    [shown] = await _numbers_json(request, account, [number])
    return shown


def _claimable(form: FormData) -> str:
    """The E.164 number a create claims."""
    value = form.get("PhoneNumber")
    if not isinstance(value, str) or not value:
        raise ApiError(
            400,
            PHONE_NUMBER_INVALID,
            "PhoneNumber is required: Verbal claims the number given and does not pick one "
            "by AreaCode",
        )
    try:
        return to_e164(value)
    except InvalidNumber:
        raise ApiError(400, PHONE_NUMBER_INVALID, f"PhoneNumber {value!r} is invalid") from None


def _national(number: str) -> str:
    """Twilio's default friendly name: the number as written in its country, (555) 000-1000."""
    return phonenumbers.format_number(
        phonenumbers.parse(number), phonenumbers.PhoneNumberFormat.NATIONAL
    )


@router.post(
    NUMBERS + ".json",
    status_code=201,
    summary="Claim a number for the account",
    tags=["Twilio IncomingPhoneNumbers"],
    openapi_extra=form_body(CLAIM_PARAMS),
)
async def create_number(request: Request, account: OwnAccount, form: RawForm) -> dict[str, Any]:
    directory = runtime(request).directory
    claimed = _claimable(form)
    unavailable = ApiError(400, PHONE_NUMBER_UNAVAILABLE, f"PhoneNumber {claimed} is not available")
    if await directory.number(claimed) is not None:
        raise unavailable
    changes = await _number_changes(request, account, form, None)
    try:
        number = await directory.add_number(
            account, claimed, changes.friendly_name or _national(claimed)
        )
    except AlreadyExists:
        raise unavailable from None
    return await _apply(request, account, number, changes)


def _number_contains(pattern: str) -> ColumnElement[bool]:
    """Twilio matches part of a number, `*` being any digit; a filter with no digit matches
    none."""
    digits = "".join("_" if c == "*" else c for c in pattern if c.isdigit() or c == "*")
    return PhoneNumber.number.like(f"%{digits}%") if digits else false()


@router.get(
    NUMBERS + ".json",
    summary="List the account's numbers, oldest first",
    tags=["Twilio IncomingPhoneNumbers"],
)
async def list_numbers(
    request: Request,
    account: OwnAccount,
    paging: PageParams,
    phone_number: Annotated[
        str | None,
        Query(alias="PhoneNumber", description="Digits the number contains; * is any digit."),
    ] = None,
    friendly_name: Annotated[str | None, Query(alias="FriendlyName", pattern=NO_NUL)] = None,
) -> dict[str, Any]:
    listing = ListQuery(lookups.numbers(account))
    listing.filter("PhoneNumber", phone_number, _number_contains)
    listing.filter("FriendlyName", friendly_name, lambda name: PhoneNumber.friendly_name == name)
    page = await keyset_page(request, listing, PhoneNumber.id, paging, newest_first=False)
    return page_json(
        f"{PREFIX}/{account.sid}/IncomingPhoneNumbers.json",
        "incoming_phone_numbers",
        await _numbers_json(request, account, page.rows),
        page,
    )


@router.get(
    NUMBERS + "/{IncomingPhoneNumberSid}.json",
    summary="Fetch a number",
    tags=["Twilio IncomingPhoneNumbers"],
)
async def fetch_number(request: Request, account: OwnAccount, sid: NumberSid) -> dict[str, Any]:
    [shown] = await _numbers_json(request, account, [await _number(request, account, sid)])
    return shown


@router.post(
    NUMBERS + "/{IncomingPhoneNumberSid}.json",
    summary="Update a number's name, URLs and applications",
    tags=["Twilio IncomingPhoneNumbers"],
    openapi_extra=form_body(NUMBER_PARAMS),
)
async def update_number(
    request: Request, account: OwnAccount, sid: NumberSid, form: RawForm
) -> dict[str, Any]:
    number = await _number(request, account, sid)
    own = await runtime(request).directory.own_application(number)
    return await _apply(
        request, account, number, await _number_changes(request, account, form, own)
    )


@router.delete(
    NUMBERS + "/{IncomingPhoneNumberSid}.json",
    status_code=204,
    summary="Release a number",
    tags=["Twilio IncomingPhoneNumbers"],
)
async def delete_number(request: Request, account: OwnAccount, sid: NumberSid) -> Response:
    await runtime(request).directory.release_number(await _number(request, account, sid))
    return Response(status_code=204)
