"""Service discovery on Consul: settings, registration, a catalog watcher and balancers.

This package never imports Flask, so the gateway's hot path and any framework can use it.
"""

from discovery.balancer import STRATEGIES, make_picker
from discovery.client import ServiceClient
from discovery.errors import DiscoveryError, NoInstanceError, RegistrationError, SettingsError
from discovery.model import Instance, Service
from discovery.registration import Registrar
from discovery.settings import ConsulSettings, ServiceSettings
from discovery.stats import EjectionPolicy, StatsTable
from discovery.watcher import CatalogWatcher

__all__ = [
    "STRATEGIES",
    "CatalogWatcher",
    "ConsulSettings",
    "DiscoveryError",
    "EjectionPolicy",
    "Instance",
    "NoInstanceError",
    "Registrar",
    "RegistrationError",
    "Service",
    "ServiceClient",
    "ServiceSettings",
    "SettingsError",
    "StatsTable",
    "make_picker",
]
