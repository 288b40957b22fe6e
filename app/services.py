"""Clients and settings the routes use, built once in the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from app.dispatch.base import Dispatcher
from app.live import LiveStreams
from app.oidc import OidcVerifier
from app.settings import Settings
from ingestion.config import IngestionConfig
from jobstore.store import JobStore


@dataclass
class Services:
    settings: Settings
    store: JobStore
    dispatcher: Dispatcher
    ingestion: IngestionConfig
    # Per-process secret of the local dispatcher; see app.auth.
    local_dispatch_key: str
    # Checks the OIDC token of pushed deliveries; None without TASKS_SERVICE_ACCOUNT.
    oidc_verifier: OidcVerifier | None
    live: LiveStreams


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services
