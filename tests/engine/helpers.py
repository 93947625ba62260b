"""Helpers the app tests share: a handset texting the app and reading its inbox."""

from __future__ import annotations

from typing import Any

from tests.conftest import LiveVerbal, wait_until

APP_NUMBER = "+15550001000"


def text_app(verbal: LiveVerbal, handset: str, body: str, *, media: tuple[str, ...] = ()) -> str:
    """A handset texts the app's number; the inbound message's SID."""
    with verbal.http() as http:
        response = http.post(
            f"/sandbox/handsets/{handset}/messages",
            json={"to": APP_NUMBER, "body": body, "media_urls": list(media)},
        )
    assert response.status_code == 201, response.text
    return str(response.json()["message_sid"])


def inbox(verbal: LiveVerbal, handset: str) -> list[dict[str, Any]]:
    """What the handset received, oldest first."""
    with verbal.http() as http:
        response = http.get(f"/sandbox/handsets/{handset}/inbox")
    assert response.status_code == 200, response.text
    return list(reversed(response.json()["messages"]))


def wait_for_texts(verbal: LiveVerbal, handset: str, count: int) -> list[dict[str, Any]]:
    return wait_until(
        lambda: texts if len(texts := inbox(verbal, handset)) >= count else None,
        timeout=10,
        what=f"{count} text(s) on {handset}",
    )


def header(headers: dict[str, str], name: str) -> str:
    """A request header, whatever case the client wrote its name in."""
    found = {key.lower(): value for key, value in headers.items()}
    return found[name.lower()]
