"""The whole pipeline on each database: accept, dispatch, receipt, callbacks."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import LiveVerbal, WebhookReceiver

FROM = "+15550001000"


def test_pipeline_delivers_and_reports_on_each_database(
    database_url: str, make_verbal: Callable[..., LiveVerbal], receiver: WebhookReceiver
) -> None:
    verbal = make_verbal(database_url)
    verbal.add_number(FROM)
    client = verbal.twilio()
    sids = [
        client.messages.create(
            to=f"+155500020{i:02d}", from_=FROM, body=f"hello {i}", status_callback=receiver.url()
        ).sid
        for i in range(30)
    ]
    receiver.wait_for(lambda rs: len(rs) >= 3 * len(sids), timeout=30)
    for sid in sids:
        seen = [
            r.params["MessageStatus"] for r in receiver.received() if r.params["MessageSid"] == sid
        ]
        assert seen == ["queued", "sent", "delivered"]
    assert {m.status for m in client.messages.list()} == {"delivered"}
