"""A high-fidelity DHIS2 Web API stand-in for the mediator's tests and demo.

Modules: ``versions`` (what changes per release), ``periods`` (ISO periods),
``metadata`` (metadata store and ``fields`` filtering), ``validation``
(value types and conflicts), ``importer`` (the dataValueSets import), ``store``
(values, audit, requests, jobs, lock exceptions, approvals), ``locking`` (expiry,
input periods, future periods per release), ``auth`` (users, sharing, Basic, PAT,
sessions), ``faults``
(fault injection), ``responses`` (WebMessage shapes) and ``app`` (Flask routes).
"""

from .app import Dhis2StandIn, create_app
from .auth import DEFAULT_USER, SUPERUSER, User, make_token
from .faults import Fault, FaultPlan
from .store import Store, StoredValue
from .versions import Dhis2Version

__all__ = [
    "DEFAULT_USER",
    "SUPERUSER",
    "Dhis2StandIn",
    "Dhis2Version",
    "Fault",
    "FaultPlan",
    "Store",
    "StoredValue",
    "User",
    "create_app",
    "make_token",
]
