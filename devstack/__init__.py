"""The local dev stack: a CouchDB-protocol server standing in for CHT's CouchDB,
a DHIS2 stand-in, the real OpenHIM core and console (built from the release
archives, ``openhim_core.py``, ``openhim_console.py``), and seed data.

Used by the tests, the demo and the benchmark alike; not part of the package the
mediator ships.
"""
