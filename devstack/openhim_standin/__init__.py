"""A faithful, in-process stand-in for OpenHIM core (API + router) — see
/work/shared/reference/openhim.md for the behaviour it reproduces.

Public API::

    standin = OpenhimStandIn(users=[User(...)], clients=[Client(...)]).start()
    standin.url / standin.router_url
    standin.mediators, standin.channels, standin.transactions
    standin.install_channels(urn, names)       # POST /mediators/:urn/channels (unscheduled!)
    standin.fire_polling_channel(id_or_name)   # agenda firing → transaction dict
    standin.faults.fail(path, status, times) / .slow(path, seconds) / .clear()
    standin.down() / standin.up()              # API listener refused / back
"""

from .app import OpenhimStandIn
from .auth import Client, User, token_headers
from .router import ChannelNotScheduled, Outcome

__all__ = ["ChannelNotScheduled", "Client", "OpenhimStandIn", "Outcome", "User", "token_headers"]
