"""The local dev stack: a CouchDB-protocol server standing in for CHT's CouchDB,
stand-ins for DHIS2 and OpenHIM core, and seed data.

Used by the tests, the demo and the benchmark alike; not part of the package the
mediator ships.
"""
