"""Nursery wiring, the service registry, shared resources and graceful shutdown."""

from ._metrics import Metrics
from ._resources import Resources, current_resources, open_resources
from ._services import SERVICES, NotYetAvailable, Service, ServiceInfo, resolve
from ._supervisor import run_services, shutdown_requested

__all__ = [
    "SERVICES",
    "Metrics",
    "NotYetAvailable",
    "Resources",
    "Service",
    "ServiceInfo",
    "current_resources",
    "open_resources",
    "resolve",
    "run_services",
    "shutdown_requested",
]
