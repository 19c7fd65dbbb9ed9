"""The one HTTP layer every peer speaks through: TLS, timeouts, retries, recording, masking.

errors.py     the PeerError hierarchy (Unreachable, TimedOut, CredentialsRefused…)
transport.py  what carries the bytes: requests' session, or a mock for unit tests
client.py     HttpClient and a peer's settings (Peer, RetryPolicy)

It knows no peer's API: what an answer means is the peer package's to say.

May import: mediator.model, mediator.settings
Outside the standard library: requests
"""
