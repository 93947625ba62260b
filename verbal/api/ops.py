"""Operations endpoints: liveness, readiness and Prometheus metrics, on every node.

`/healthz` says the process answers; `/readyz` says it can do its job (the database answers,
and on a worker the dispatcher runs), so a load balancer or orchestrator only sends work to
ready nodes. `/metrics` is the Prometheus text format; queue figures are read from the
shared database at scrape time.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text

from verbal.api.auth import runtime
from verbal.metrics import MESSAGES_IN_PROGRESS, QUEUE_DEPTH, QUEUE_DUE, QUEUE_LAG

router = APIRouter(include_in_schema=False)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    current = runtime(request)
    problems: list[str] = []
    try:
        async with current.sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to reach the database means not ready
        problems.append(f"database: {type(exc).__name__}")
    if current.runs_workers and not current.dispatching:
        problems.append("workers are not running")
    if current.pipeline is not None and not current.pipeline.ready:
        problems.append("the pipeline process is not running")
    body = {"status": "ready" if not problems else "not ready", "role": current.settings.role}
    if problems:
        body["problems"] = "; ".join(problems)
    return JSONResponse(body, status_code=200 if not problems else 503)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    stats = await runtime(request).queue.stats()
    QUEUE_DEPTH.clear()
    for kind, count in stats.by_kind.items():
        QUEUE_DEPTH.labels(kind).set(count)
    QUEUE_DUE.set(stats.due)
    QUEUE_LAG.set(stats.lag_seconds)
    MESSAGES_IN_PROGRESS.set(runtime(request).messaging.backlog)
    return Response(await runtime(request).metrics(), media_type=CONTENT_TYPE_LATEST)
