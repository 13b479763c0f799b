"""The application factory: settings in, a ready ASGI app out."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import structlog
from fastapi import FastAPI, Query
from fastapi_offline import FastAPIOffline

from gitscripts import __version__
from gitscripts.auth.routes import admin_router
from gitscripts.auth.routes import router as auth_router
from gitscripts.cluster.routes import router as cluster_router
from gitscripts.config import ConfigurationError, Settings, load_settings
from gitscripts.deps.environment_routes import router as environments_router
from gitscripts.examples.routes import router as examples_router
from gitscripts.executor.files_socket import FilesSocket
from gitscripts.executor.gate import AdmissionGate
from gitscripts.executor.routes import router as executor_router
from gitscripts.files.routes import files_router
from gitscripts.githttp.routes import router as git_router
from gitscripts.history.routes import router as history_router
from gitscripts.http_errors import install_error_handlers
from gitscripts.inputs.routes import router as inputs_router
from gitscripts.logging import RequestLogMiddleware, configure_logging
from gitscripts.manager.routes import router as manager_router
from gitscripts.metrics_http import MetricsMiddleware
from gitscripts.metrics_http import router as metrics_router
from gitscripts.repo import leftovers
from gitscripts.runs.routes import router as runs_router
from gitscripts.search.routes import router as search_router
from gitscripts.services import Services
from gitscripts.web.routes import install_web_ui


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level, json_lines=settings.environment == "production")
    settings.secret_key  # noqa: B018 - refuse to start now, not on the first login
    services = Services.build(settings)
    leftovers.sweep(settings.repo_path)
    ambiguous = services.repo.ambiguous_refs()
    if ambiguous:
        # Made before the naming rules or behind the service: `?rev=` still reads each name one
        # way (see `Repository.resolve`), but an admin should rename or delete these.
        structlog.get_logger("gitscripts").warning("ambiguous_refs", refs=ambiguous)
    # A crash between a commit and its index write, or a push while the service was down,
    # leaves the index behind `main`: catch up before serving.
    services.lookups.ensure_synced()
    # What a previous process left running did not finish: say so before anyone reads it.
    services.runs.recover()
    services.runs.prune()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The file API's socket first: the sandbox's start-up probe binds it into a run.
        files_socket = FilesSocket(app, services.executor.files_socket)
        await files_socket.start()
        sweeper: asyncio.Task[None] | None = None
        try:
            try:
                await services.executor.start()
            except ConfigurationError as exc:
                structlog.get_logger("gitscripts").error("start_refused", reason=str(exc))
                raise
            await services.runs.start()
            sweeper = asyncio.create_task(_sweep_leftovers(settings))
            if services.repo.housekeeping is not None:  # what a previous process left loose
                services.repo.housekeeping.after_commit()
            structlog.get_logger("gitscripts").info(
                "started",
                data_dir=str(settings.data_dir),
                environment=settings.environment,
                executor=settings.executor,
            )
            yield
        finally:
            if sweeper is not None:
                sweeper.cancel()
            await services.runs.stop()  # its runs first, while the executor can end them
            if services.repo.housekeeping is not None:
                services.repo.housekeeping.stop()
            await services.executor.stop()
            services.environments.close()
            await files_socket.stop()

    # /docs and /redoc with their scripts served from here, not a CDN: they work offline too.
    app = FastAPIOffline(
        title="gitscripts",
        version=__version__,
        description="A Git-backed Python script repository and execution service.",
        debug=settings.debug,
        lifespan=lifespan,
    )
    app.state.services = services
    # Inside the request log (added later = outer): a run refused at the gate is logged too.
    app.add_middleware(AdmissionGate, admission=services.executor.admission)
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    install_error_handlers(app)

    @app.get("/health", tags=["health"])
    def health(
        detail: Annotated[
            bool, Query(description="also say which sandbox protections are active")
        ] = False,
    ) -> dict[str, Any]:
        answer: dict[str, Any] = {"status": "healthy"}  # the original answer, byte for byte
        cluster = services.executor.cluster
        if cluster is not None:  # EXECUTOR=dask: the service is up, whatever the cluster is
            answer["cluster"] = cluster.status()
        if detail:
            answer["execution"] = services.executor.protections
        return answer

    app.include_router(auth_router)
    app.include_router(admin_router)
    app.include_router(manager_router)
    app.include_router(history_router)
    app.include_router(inputs_router)
    app.include_router(search_router)
    app.include_router(executor_router)
    app.include_router(runs_router)
    app.include_router(environments_router)
    app.include_router(metrics_router)
    app.include_router(files_router())
    app.include_router(git_router)
    app.include_router(cluster_router)
    app.include_router(examples_router)
    install_web_ui(app)
    return app


async def _sweep_leftovers(settings: Settings) -> None:
    """What a writer killed while this service runs leaves behind is removed within the hour."""
    while True:
        await asyncio.sleep(leftovers.SWEEP_INTERVAL)
        try:
            await asyncio.to_thread(leftovers.sweep, settings.repo_path)
        except Exception:  # a failed sweep must not end the sweeping
            structlog.get_logger("gitscripts").exception("crash_leftovers_sweep_failed")
