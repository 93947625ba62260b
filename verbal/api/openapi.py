"""The OpenAPI document at /openapi.json: FastAPI's, completed with what FastAPI cannot see.

FastAPI derives paths, parameters, form and model bodies and the security scheme from the
routes. What it cannot know, `install` adds:

- the errors each operation really answers. They come from exception handlers
  (`verbal.api.errors`), the body-size middleware and Plivo's route class, not from the
  routes, so they are derived from each operation itself and new routes get them with no
  entry here: 401 where it is authenticated, 400 where it takes parameters or a body (the
  validation handler answers 400, never FastAPI's 422), 404 where its path has parameters,
  413 where its method carries a body, and 500 anywhere. Their body is Twilio's
  `{code, message, more_info, status}`, or Plivo's `{api_id, error}` under Plivo's prefix,
  except 413 and 500, which the middleware and the last-resort handler answer for every
  path alike;
- what the handlers' plain-dict answers look like (`verbal.api.schemas`), in OPERATIONS;
- the requests of handlers that read the raw request (Plivo's send, Tropo's sessions), in
  OPERATIONS too;
- that a form field cannot be null: FastAPI documents an optional `Form` parameter as
  "string or null", which a client can only send as the text "null".

What a route declares itself (`responses=`, `openapi_extra=`, as Restcomm's routes do) is
kept: this only fills in what is missing. Handlers are left as they are: a `response_model`
would filter their output, and they return their platforms' exact shapes.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.constants import REF_TEMPLATE
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from verbal.api import schemas
from verbal.api.plivo import PREFIX as PLIVO_PREFIX
from verbal.api.restcomm import PREFIX as RESTCOMM_PREFIX
from verbal.api.twilio_messaging import PREFIX as SERVICES

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
METHODS_WITH_BODY = frozenset({"post", "put", "patch"})
IMPLIED_ERRORS = {
    "400": "A parameter is missing, malformed or refused; the error says which.",
    "401": "No credentials, wrong ones, or an account in the path that is not the caller's.",
    "404": "No such resource, or a path that matches no route.",
    "413": "The request body is larger than `max_request_bytes`.",
    "500": "An unexpected error; the message carries an incident id, logged on the server.",
}
SANDBOX_OFF = "The sandbox network is disabled on this server."

FORMS = (FORM, "multipart/form-data")
NULL = {"type": "null"}


def json_answer(description: str, model: type[BaseModel]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": model}}}


def _tropo_answer(description: str) -> dict[str, Any]:
    # XML unless the client's Accept names JSON or a form, as Tropo answered.
    return {
        "description": description,
        "content": {
            "text/xml": {"schema": {"type": "string"}},
            JSON: {"schema": schemas.TropoSessionReply},
            FORM: {"schema": {"type": "string"}},
        },
    }


# What Tropo's launch takes as JSON or a form; every field but these two goes to the app.
_TROPO_LAUNCH = {
    "type": "object",
    "properties": {
        "token": {"type": "string", "description": "The application's messaging or voice token."},
        "action": {"type": "string", "enum": ["create"]},
    },
    "additionalProperties": True,
}
_TROPO_QUERY = [
    {
        "name": "token",
        "in": "query",
        "description": "The application's messaging or voice token (or in the body).",
        "schema": {"type": "string"},
    },
    {"name": "action", "in": "query", "schema": {"type": "string", "enum": ["create"]}},
]
_TROPO_ANSWERS = {
    "200": _tropo_answer("The session was launched; `id` is its SID."),
    "400": _tropo_answer("An unknown action, an unreadable body, or a token of a non-Tropo app."),
    "401": _tropo_answer("No application has this token."),
}
_TROPO_GET = {"parameters": _TROPO_QUERY, "responses": _TROPO_ANSWERS}
_TROPO_POST = {
    "parameters": _TROPO_QUERY,
    "requestBody": {
        "required": False,
        "content": {
            JSON: {"schema": _TROPO_LAUNCH},
            FORM: {"schema": _TROPO_LAUNCH},
            "text/xml": {
                "schema": {
                    "type": "string",
                    "description": '<session><token>…</token><var name="…" value="…"/></session>',
                }
            },
        },
    },
    "responses": _TROPO_ANSWERS,
}

# What Plivo's send takes, as JSON (what the `plivo` SDK posts) or as a form.
_PLIVO_SEND = {
    "type": "object",
    "required": ["dst"],
    "properties": {
        "src": {
            "type": "string",
            "description": "One of the account's numbers; required unless `powerpack_uuid`.",
        },
        "powerpack_uuid": {
            "type": "string",
            "description": "Instead of `src`: a Messaging Service's SID in UUID form; a "
            "number of its pool sends.",
        },
        "dst": {"type": "string", "description": "The destination; several joined with `<`."},
        "text": {"type": "string"},
        "type": {"type": "string", "enum": ["sms", "mms"], "default": "sms"},
        "media_urls": {
            "type": "array",
            "items": {"type": "string"},
            "description": "Only with type mms.",
        },
        "url": {"type": "string", "description": "Where delivery reports go, in Plivo's format."},
        "method": {"type": "string", "enum": ["GET", "POST"], "default": "POST"},
        "message_expiry": {"type": "integer", "description": "Seconds."},
    },
}

# What Plivo's Application and Number resources take, as JSON or a form.
_URL = {"type": "string", "description": 'An http(s) URL; "" clears it.'}
_METHOD = {"type": "string", "enum": ["GET", "POST"]}
_PLIVO_FLAGS = ("default_number_app", "default_endpoint_app", "log_incoming_messages", "public_uri")
_PLIVO_APPLICATION = {
    "type": "object",
    "properties": {
        "app_name": {"type": "string", "maxLength": 64},
        **{
            name: _URL
            for name in ("message_url", "answer_url", "fallback_answer_url", "hangup_url")
        },
        **{
            name: _METHOD
            for name in ("message_method", "answer_method", "fallback_method", "hangup_method")
        },
        **{name: {"type": "boolean"} for name in _PLIVO_FLAGS},
        "subaccount": {"type": "string"},
    },
}
_PLIVO_NEW_APPLICATION = {**_PLIVO_APPLICATION, "required": ["app_name"]}
_PLIVO_NEW_NUMBERS = {
    "type": "object",
    "required": ["numbers", "carrier", "region"],
    "properties": {
        "numbers": {"type": "string", "description": "Comma-separated, with country codes."},
        "carrier": {"type": "string", "description": "Required by Plivo; not kept."},
        "region": {"type": "string", "description": "Required by Plivo; not kept."},
        "app_id": {"type": "string", "description": "Else the default number app."},
    },
}
_PLIVO_NUMBER = {
    "type": "object",
    "properties": {
        "app_id": {"type": "string", "description": 'Attach an application; "" detaches it.'},
        "alias": {"type": "string", "maxLength": 64},
    },
}


def _json_or_form(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {JSON: {"schema": schema}, FORM: {"schema": schema}}}


_PLIVO_EXAMPLE = {"src": "15550001000", "dst": "15550002000", "text": "Hello from Verbal"}

RESTCOMM = RESTCOMM_PREFIX + "/{AccountSid}"


def _restcomm_json(model: type[BaseModel]) -> dict[str, Any]:
    # Restcomm's routes declare their XML and their errors; this adds the JSON's shape.
    return {"responses": {"200": {"content": {JSON: {"schema": model}}}}}


def _restcomm(method: str, path: str, model: type[BaseModel]) -> dict[tuple[str, str], Any]:
    """Restcomm serves each path also with `.json`, the same answer in JSON."""
    entry = _restcomm_json(model)
    return {(method, RESTCOMM + path): entry, (method, RESTCOMM + path + ".json"): entry}


NUMBER = "+15550001000"
HANDSET = "+15550002000"
TWILIO = "/2010-04-01/Accounts/{AccountSid}"
PLIVO = PLIVO_PREFIX + "/{auth_id}"

# What FastAPI cannot infer, by (method, path): merged into FastAPI's operation. Error
# statuses given with a description only get their body from `_error_model`. Examples use
# the numbers of the README's walkthrough.
OPERATIONS: dict[tuple[str, str], dict[str, Any]] = {
    ("post", f"{TWILIO}/Messages.json"): {
        "requestBody": {
            "content": {
                FORM: {"example": {"To": HANDSET, "From": NUMBER, "Body": "Hello from Verbal"}}
            }
        },
        "responses": {"201": json_answer("The message, queued.", schemas.TwilioMessage)},
    },
    ("get", f"{TWILIO}/Messages.json"): {
        "responses": {"200": json_answer("A page of messages.", schemas.TwilioMessagePage)}
    },
    ("get", f"{TWILIO}/Messages/{{MessageSid}}.json"): {
        "responses": {"200": json_answer("The message.", schemas.TwilioMessage)}
    },
    ("post", f"{TWILIO}/Messages/{{MessageSid}}.json"): {
        "responses": {"200": json_answer("The message, updated.", schemas.TwilioMessage)}
    },
    ("get", f"{TWILIO}/Messages/{{MessageSid}}/Media.json"): {
        "responses": {"200": json_answer("A page of the message's media.", schemas.TwilioMediaPage)}
    },
    ("get", f"{TWILIO}/Messages/{{MessageSid}}/Media/{{MediaSid}}.json"): {
        "responses": {"200": json_answer("The media item.", schemas.TwilioMedia)}
    },
    ("post", f"{TWILIO}/Calls.json"): {
        "requestBody": {
            "content": {
                FORM: {
                    "example": {
                        "To": HANDSET,
                        "From": NUMBER,
                        "Url": "http://127.0.0.1:5001/voice",
                    }
                }
            }
        },
        "responses": {
            "201": json_answer("The call, placed.", schemas.TwilioCall),
            "400": {"description": IMPLIED_ERRORS["400"]},
        },
    },
    ("get", f"{TWILIO}/Calls.json"): {
        "responses": {"200": json_answer("A page of calls.", schemas.TwilioCallPage)}
    },
    ("get", f"{TWILIO}/Calls/{{CallSid}}.json"): {
        "responses": {"200": json_answer("The call.", schemas.TwilioCall)}
    },
    ("post", f"{TWILIO}/Calls/{{CallSid}}.json"): {
        "responses": {
            "200": json_answer("The call, after the change.", schemas.TwilioCall),
            "400": {"description": IMPLIED_ERRORS["400"]},
        }
    },
    ("post", f"{PLIVO}/Call/"): {
        "responses": {
            "201": json_answer("The call, placed.", schemas.PlivoCallFired),
            "400": {"description": IMPLIED_ERRORS["400"]},
        },
    },
    ("get", f"{PLIVO}/Call/{{call_uuid}}/"): {
        "responses": {"200": json_answer("The call's record.", schemas.PlivoCall)}
    },
    ("post", "/sandbox/handsets/{number}/calls"): {
        "requestBody": {"content": {JSON: {"example": {"to": NUMBER}}}},
        "responses": {
            "201": json_answer("The call, ringing the number's app.", schemas.HandsetDialed),
            "404": {"description": f"{SANDBOX_OFF} Or `to` is not one of the account's numbers."},
        },
    },
    ("get", "/sandbox/handsets/{number}/calls"): {
        "responses": {
            "200": json_answer("The handset's recent calls.", schemas.HandsetCalls),
            "404": {"description": SANDBOX_OFF},
        }
    },
    ("get", "/sandbox/calls/{sid}/recording.wav"): {
        "responses": {
            "200": {
                "description": "What the handset heard: WAV, 8 kHz, 16-bit, mono.",
                "content": {"audio/wav": {"schema": {"type": "string", "format": "binary"}}},
            },
            "404": {"description": f"No such recent call. {SANDBOX_OFF}"},
        }
    },
    ("post", "/sandbox/calls/{sid}/hangup"): {
        "responses": {
            "200": json_answer("The call as the handset saw it.", schemas.HandsetCall),
            "404": {"description": f"No such recent call. {SANDBOX_OFF}"},
        }
    },
    ("get", "/2010-04-01/Accounts.json"): {
        "responses": {"200": json_answer("The caller's account.", schemas.TwilioAccountPage)}
    },
    ("get", f"{TWILIO}.json"): {
        "responses": {"200": json_answer("The account.", schemas.TwilioAccount)}
    },
    ("post", f"{TWILIO}/Applications.json"): {
        "responses": {"201": json_answer("The application.", schemas.TwilioApplication)}
    },
    ("get", f"{TWILIO}/Applications.json"): {
        "responses": {"200": json_answer("A page of applications.", schemas.TwilioApplicationPage)}
    },
    ("get", f"{TWILIO}/Applications/{{ApplicationSid}}.json"): {
        "responses": {"200": json_answer("The application.", schemas.TwilioApplication)}
    },
    ("post", f"{TWILIO}/Applications/{{ApplicationSid}}.json"): {
        "responses": {"200": json_answer("The application, updated.", schemas.TwilioApplication)}
    },
    ("post", f"{TWILIO}/IncomingPhoneNumbers.json"): {
        "responses": {"201": json_answer("The number, claimed.", schemas.TwilioNumber)}
    },
    ("get", f"{TWILIO}/IncomingPhoneNumbers.json"): {
        "responses": {"200": json_answer("A page of numbers.", schemas.TwilioNumberPage)}
    },
    ("get", f"{TWILIO}/IncomingPhoneNumbers/{{IncomingPhoneNumberSid}}.json"): {
        "responses": {"200": json_answer("The number.", schemas.TwilioNumber)}
    },
    ("post", f"{TWILIO}/IncomingPhoneNumbers/{{IncomingPhoneNumberSid}}.json"): {
        "responses": {"200": json_answer("The number, updated.", schemas.TwilioNumber)}
    },
    ("post", SERVICES): {
        "responses": {
            "201": json_answer("The service.", schemas.TwilioService),
            # The form is read whole: no validated parameter implies this one.
            "400": {"description": IMPLIED_ERRORS["400"]},
        }
    },
    ("get", SERVICES): {
        "responses": {"200": json_answer("A page of services.", schemas.TwilioServicePage)}
    },
    ("get", f"{SERVICES}/{{ServiceSid}}"): {
        "responses": {"200": json_answer("The service.", schemas.TwilioService)}
    },
    ("post", f"{SERVICES}/{{ServiceSid}}"): {
        "responses": {"200": json_answer("The service, updated.", schemas.TwilioService)}
    },
    ("post", f"{SERVICES}/{{ServiceSid}}/PhoneNumbers"): {
        "responses": {"201": json_answer("The number, in the pool.", schemas.TwilioServiceNumber)}
    },
    ("get", f"{SERVICES}/{{ServiceSid}}/PhoneNumbers"): {
        "responses": {
            "200": json_answer("A page of the pool's numbers.", schemas.TwilioServiceNumberPage)
        }
    },
    ("get", f"{SERVICES}/{{ServiceSid}}/PhoneNumbers/{{PhoneNumberSid}}"): {
        "responses": {"200": json_answer("The number.", schemas.TwilioServiceNumber)}
    },
    ("post", f"{PLIVO}/Message/"): {
        "requestBody": {
            "required": True,
            "content": {
                JSON: {"schema": _PLIVO_SEND, "example": _PLIVO_EXAMPLE},
                FORM: {"schema": _PLIVO_SEND, "example": _PLIVO_EXAMPLE},
            },
        },
        "responses": {"202": json_answer("The messages, queued.", schemas.PlivoQueued)},
    },
    ("get", f"{PLIVO}/Message/"): {
        "responses": {"200": json_answer("A page of messages.", schemas.PlivoMessagePage)}
    },
    ("get", f"{PLIVO}/Message/{{message_uuid}}/"): {
        "responses": {"200": json_answer("The message.", schemas.PlivoMessageFetched)}
    },
    ("post", f"{PLIVO}/Application/"): {
        "requestBody": {"required": True, **_json_or_form(_PLIVO_NEW_APPLICATION)},
        "responses": {"201": json_answer("The application's id.", schemas.PlivoCreated)},
    },
    ("get", f"{PLIVO}/Application/"): {
        "responses": {"200": json_answer("A page of applications.", schemas.PlivoApplicationPage)}
    },
    ("get", f"{PLIVO}/Application/{{app_id}}/"): {
        "responses": {"200": json_answer("The application.", schemas.PlivoApplicationFetched)}
    },
    ("post", f"{PLIVO}/Application/{{app_id}}/"): {
        "requestBody": _json_or_form(_PLIVO_APPLICATION),
        "responses": {"202": json_answer("Changed.", schemas.PlivoChanged)},
    },
    ("post", f"{PLIVO}/Number/"): {
        "requestBody": {"required": True, **_json_or_form(_PLIVO_NEW_NUMBERS)},
        "responses": {"202": json_answer("Added.", schemas.PlivoChanged)},
    },
    ("get", f"{PLIVO}/Number/"): {
        "responses": {"200": json_answer("A page of numbers.", schemas.PlivoNumberPage)}
    },
    ("get", f"{PLIVO}/Number/{{number}}/"): {
        "responses": {"200": json_answer("The number.", schemas.PlivoNumberFetched)}
    },
    ("post", f"{PLIVO}/Number/{{number}}/"): {
        "requestBody": _json_or_form(_PLIVO_NUMBER),
        "responses": {"202": json_answer("Changed.", schemas.PlivoChanged)},
    },
    ("get", "/sandbox/handsets/{number}/inbox"): {
        "responses": {
            "200": json_answer("The handset's messages.", schemas.HandsetInbox),
            "404": {"description": SANDBOX_OFF},
        }
    },
    ("post", "/sandbox/handsets/{number}/messages"): {
        "requestBody": {"content": {JSON: {"example": {"to": NUMBER, "body": "Hello back"}}}},
        "responses": {
            "201": json_answer("The text, received by the network.", schemas.HandsetSent),
            "404": {"description": f"{SANDBOX_OFF} Or `to` is not one of the account's numbers."},
        },
    },
    ("get", "/sandbox/rules"): {
        "responses": {
            "200": json_answer("The account's rules.", schemas.SandboxRules),
            "404": {"description": SANDBOX_OFF},
        }
    },
    ("post", "/sandbox/rules"): {
        "responses": {
            "201": json_answer("The rule, added last.", schemas.SandboxRule),
            "404": {"description": SANDBOX_OFF},
        }
    },
    ("delete", "/sandbox/rules"): {"responses": {"404": {"description": SANDBOX_OFF}}},
    ("delete", "/sandbox/rules/{rule_id}"): {
        "responses": {"404": {"description": f"No such rule. {SANDBOX_OFF}"}}
    },
    ("get", "/verbal/v1/messages/{sid}/timeline"): {
        "responses": {"200": json_answer("The message's history.", schemas.MessageTimeline)}
    },
    ("get", "/verbal/v1/sessions"): {
        "responses": {"200": json_answer("The sessions, newest first.", schemas.Sessions)}
    },
    ("get", "/verbal/v1/sessions/{sid}"): {
        "responses": {"200": json_answer("The session and its log.", schemas.SessionLog)}
    },
    ("get", "/verbal/v1/opt-outs"): {
        "responses": {"200": json_answer("The opt-outs, oldest first.", schemas.OptOuts)}
    },
    ("get", "/verbal/v1/opt-outs/replies"): {
        "responses": {"200": json_answer("The replies.", schemas.OptOutReplies)}
    },
    ("post", "/verbal/v1/opt-outs/replies"): {
        "responses": {"200": json_answer("The replies, changed.", schemas.OptOutReplies)}
    },
    ("post", f"{RESTCOMM}/Messages"): _restcomm_json(schemas.RestcommMessage),
    **_restcomm("post", "/SMS/Messages", schemas.RestcommSms),
    **_restcomm("post", "/Calls", schemas.RestcommCall),
    **_restcomm("get", "/Calls", schemas.RestcommCallPage),
    **_restcomm("get", "/Calls/{CallSid}", schemas.RestcommCall),
    **_restcomm("post", "/Calls/{CallSid}", schemas.RestcommCall),
    **_restcomm("put", "/Calls/{CallSid}", schemas.RestcommCall),
    **_restcomm("get", "/SMS/Messages", schemas.RestcommSmsPage),
    **_restcomm("get", "/SMS/Messages/{MessageSid}", schemas.RestcommSms),
    **_restcomm("post", "/Applications", schemas.RestcommApplication),
    **_restcomm("get", "/Applications", schemas.RestcommApplicationPage),
    **_restcomm("get", "/Applications/{ApplicationSid}", schemas.RestcommApplication),
    **_restcomm("post", "/Applications/{ApplicationSid}", schemas.RestcommApplication),
    **_restcomm("put", "/Applications/{ApplicationSid}", schemas.RestcommApplication),
    **_restcomm("post", "/IncomingPhoneNumbers", schemas.RestcommNumber),
    **_restcomm("get", "/IncomingPhoneNumbers", schemas.RestcommNumberPage),
    **_restcomm("get", "/IncomingPhoneNumbers/{PhoneNumberSid}", schemas.RestcommNumber),
    **_restcomm("post", "/IncomingPhoneNumbers/{PhoneNumberSid}", schemas.RestcommNumber),
    **_restcomm("put", "/IncomingPhoneNumbers/{PhoneNumberSid}", schemas.RestcommNumber),
    ("get", "/1.0/sessions"): _TROPO_GET,
    ("post", "/1.0/sessions"): _TROPO_POST,
    ("get", "/v1/sessions"): _TROPO_GET,
    ("post", "/v1/sessions"): _TROPO_POST,
}


def install(app: FastAPI) -> None:
    """Serve the completed document; like FastAPI's, it is built once, on first request."""
    document: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not document:
            # FastAPI keeps its own document; completing a copy leaves it to retry from.
            document.update(complete(copy.deepcopy(FastAPI.openapi(app))))
        return document

    app.openapi = openapi  # type: ignore[method-assign]


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with every operation's answers, errors and raw requests filled in."""
    uses: list[_ModelUse] = []
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            _merge(operation, copy.deepcopy(OPERATIONS.get((method, path), {})))
            _add_errors(operation, method, path)
            _drop_null_from_forms(document, operation)
            _find_models(operation, uses)
    if uses:
        _define(document, uses)
    return document


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def _add_errors(operation: dict[str, Any], method: str, path: str) -> None:
    responses = operation.setdefault("responses", {})
    # FastAPI's 422 marks operations with validated parameters or a body; ours answers 400.
    implied = {"500"}
    if responses.pop("422", None) is not None:
        implied.add("400")
    if operation.get("security"):
        implied.add("401")
    if any(parameter["in"] == "path" for parameter in operation.get("parameters", ())):
        implied.add("404")
    if method in METHODS_WITH_BODY:
        implied.add("413")
    for status in sorted(implied - responses.keys()):
        responses[status] = {"description": IMPLIED_ERRORS[status]}
        if status == "401":
            responses[status]["headers"] = {
                "WWW-Authenticate": {
                    "description": 'Basic realm="Verbal"',
                    "required": True,
                    "schema": {"type": "string"},
                }
            }
    for status, response in responses.items():
        if status.startswith(("4", "5")) and "content" not in response:
            response["content"] = {JSON: {"schema": _error_model(status, path)}}


def _error_model(status: str, path: str) -> type[BaseModel]:
    if status in ("413", "500") or not path.startswith(PLIVO_PREFIX + "/"):
        return schemas.TwilioError
    return schemas.PlivoError


def _drop_null_from_forms(document: dict[str, Any], operation: dict[str, Any]) -> None:
    for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
        schema = content.get("schema", {})
        if media_type not in FORMS or "$ref" not in schema:
            continue
        name = schema["$ref"].rsplit("/", 1)[-1]
        for field in document["components"]["schemas"][name].get("properties", {}).values():
            alternatives = field.get("anyOf", [])
            if NULL in alternatives:
                rest = [alternative for alternative in alternatives if alternative != NULL]
                del field["anyOf"]
                if len(rest) == 1:
                    field.update(rest[0])
                else:
                    field["anyOf"] = rest


@dataclass(frozen=True)
class _ModelUse:
    """A place in the document that holds a model class, to be replaced by a reference."""

    node: dict[str, Any]
    key: str
    model: type[BaseModel]


def _find_models(node: dict[str, Any], uses: list[_ModelUse]) -> None:
    for key, value in node.items():
        if isinstance(value, type) and issubclass(value, BaseModel):
            uses.append(_ModelUse(node, key, value))
        elif isinstance(value, dict):
            _find_models(value, uses)


def _define(document: dict[str, Any], uses: list[_ModelUse]) -> None:
    # Answers are what handlers serialize: fields with defaults may still be absent.
    wanted = [(model, "serialization") for model in {use.model for use in uses}]
    references, definitions = models_json_schema(
        sorted(wanted, key=lambda pair: pair[0].__name__), ref_template=REF_TEMPLATE
    )
    for use in uses:
        use.node[use.key] = references[(use.model, "serialization")]
    existing = document.setdefault("components", {}).setdefault("schemas", {})
    for name, definition in definitions.get("$defs", {}).items():
        # FastAPI may already define an enum such as Outcome; two different schemas of
        # one name would silently describe one of them wrong.
        if existing.setdefault(name, definition) != definition:
            raise ValueError(f"two different schemas are both named {name}")
