"""The HTTP application: every front door mounted on one FastAPI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from verbal import __version__
from verbal.api import demo as demo_app
from verbal.api import errors, native, openapi, ops, plivo, plivo_resources, sandbox, tropo, twilio
from verbal.api.fastlane import FastLane
from verbal.api.limits import BodySizeLimit
from verbal.api.plivo_calls import router as plivo_calls_router
from verbal.api.restcomm import router as restcomm_router
from verbal.api.twilio_calls import router as twilio_calls_router
from verbal.api.twilio_messaging import router as twilio_messaging_router
from verbal.api.twilio_resources import router as twilio_resources_router
from verbal.console import router as console_router
from verbal.runtime import Runtime


def create_app(runtime: Runtime, *, manage_runtime: bool = True, demo: bool = False) -> FastAPI:
    """Build the app. With `manage_runtime`, the app's lifespan starts and stops `runtime`."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if manage_runtime:
            await runtime.start()
        try:
            yield
        finally:
            if manage_runtime:
                await runtime.stop()

    # Its /docs and /redoc pages load their scripts from this server, not from a CDN.
    app = FastAPIOffline(
        title="Verbal",
        version=__version__,
        description="Self-hosted programmable messaging with Twilio-, Restcomm- and "
        "Plivo-compatible APIs and a simulated network for development.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry hooks look for configured providers on every request;
        # Verbal reports through Prometheus (`/metrics`) and configures none, so the check
        # was pure cost on the hot path.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = runtime
    errors.install(app)
    openapi.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=runtime.settings.max_request_bytes)
    if runtime.serves_api:
        # Added last, so it sees requests first: sends and handsets' texts skip the framework
        # (fastlane.py).
        app.add_middleware(FastLane, max_bytes=runtime.settings.max_request_bytes)
    app.include_router(ops.router)
    if not runtime.serves_api:
        # A worker node answers only health and metrics; the APIs live on api nodes.
        return app
    app.include_router(twilio.router)
    app.include_router(twilio_resources_router)
    app.include_router(twilio_calls_router)
    app.include_router(twilio_messaging_router)
    app.include_router(plivo.router)
    app.include_router(plivo_resources.router)
    app.include_router(plivo_calls_router)
    app.include_router(sandbox.router)
    app.include_router(native.router)
    app.include_router(tropo.router)
    app.include_router(restcomm_router)
    app.include_router(console_router)
    if demo:
        app.include_router(demo_app.router)
    return app
