"""The FastAPI application: `create_app(settings)` builds one; `app` is the default instance."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api import errors
from api.input_guard import refuse_unstorable_input
from api.middleware import ErrorBoundaryMiddleware, RequestMetricsMiddleware
from api.routes import (
    a2a,
    agents,
    command_center,
    console,
    conversations,
    events,
    health,
    keys,
    me,
    pipeline_hooks,
    pipelines,
    runs,
    secrets,
    voice,
)
from api.sse import EventStreamer
from deeployd import temporal
from deeployd.logging import configure_logging
from deeployd.orgs import KeyAuthenticator, KeyLiveness
from deeployd.pipelines.sources.api_event import ApiEventRouter
from deeployd.request_log import RequestObserver, RequestRecord
from deeployd.services import Services
from deeployd.settings import Settings, get_settings

log = logging.getLogger(__name__)


async def _connect_temporal_until_up(services: Services) -> None:
    """Keep trying in the background so the API serves (and reports health) while Temporal is down."""
    delay = 0.5
    while services.temporal is None:
        try:
            services.temporal = await temporal.connect(
                services.settings,
                max_retry_seconds=services.settings.temporal_rpc_timeout_seconds,
            )
            log.info("connected to Temporal at %s", services.settings.temporal_address)
        except Exception as exc:
            log.warning("Temporal not reachable yet (%s); retrying in %.1fs", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    # The `api_event` pipeline source observes every request once its router is up.
    api_events: list[ApiEventRouter] = []

    def observe_api_event(record: RequestRecord) -> None:
        for router in api_events:
            router.observe(record)

    observers: list[RequestObserver] = [observe_api_event]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = await Services.open(settings, with_temporal=False, with_bus=True)
        voice.warm_up(settings)  # loads the neural voice in the background
        connector = asyncio.create_task(_connect_temporal_until_up(services))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(connector), timeout=5)
        app.state.services = services
        app.state.authenticator = KeyAuthenticator(settings.auth_cache_seconds)
        app.state.streamer = EventStreamer(
            services.require_bus(),
            services.db.pool,
            ping_seconds=settings.sse_ping_seconds,
            retry_ms=settings.sse_retry_ms,
            key_check=KeyLiveness(services.db.pool),
        )
        api_events.append(ApiEventRouter(services))
        try:
            yield
        finally:
            connector.cancel()
            for router in api_events:
                await router.close()
            api_events.clear()
            await services.close()

    app = FastAPI(
        title="Deeployd Streaming",
        version="0.1.0",
        description="Durable agent runs and data pipelines, streamed live over Server-Sent Events.",
        lifespan=lifespan,
        # NUL, lone surrogates and non-finite numbers in any parameter or JSON body: a 422.
        dependencies=[Depends(refuse_unstorable_input)],
    )
    app.state.request_observers = observers
    # Inside the metrics middleware, so a request it answers is counted with its real status.
    app.add_middleware(ErrorBoundaryMiddleware, retry_after_s=lambda: settings.retry_after_seconds)
    app.add_middleware(RequestMetricsMiddleware, observers=observers)
    errors.install(app)
    for module in (
        health,
        me,
        keys,
        secrets,
        events,
        voice,
        console,
        agents,
        conversations,
        runs,
        command_center,
        pipelines,
        pipeline_hooks,
        a2a,
    ):
        app.include_router(module.router)
    a2a.mount(app)  # the a2a-sdk's JSON-RPC and HTTP+JSON apps
    app.mount("/console", console.static_files(), name="console")
    return app


def _default_app() -> FastAPI:
    settings = get_settings()
    configure_logging(settings.log_level, json_lines=settings.log_json)
    return create_app(settings)


def __getattr__(name: str) -> FastAPI:
    # `uvicorn api.main:app` builds the app on first access, not at import time.
    if name == "app":
        application = _default_app()
        globals()["app"] = application
        return application
    raise AttributeError(name)
