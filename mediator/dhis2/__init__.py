"""DHIS2's Web API (2.36 to 2.42) and what DHIS2 decides about the values sent to it.

client.py     Dhis2Client: one method per Web API call; the only module here with I/O
answers.py    what its answers mean: server, user, stored values, and errors by cause
metadata.py   a data set's metadata, and DHIS2's value rules (types, zeros)
rules.py      per-release period rules (expiry, input periods, future periods)
preflight.py  the rows checked against the metadata and the rules, before posting (pure)
plan.py       the push planner: what to send, clear or leave so that DHIS2 ends holding
              exactly what was computed (pure)
imports.py    import summaries, 2.36 to 2.42, and which row each conflict refused
conflicts.py  the E76xx code of a conflict, whatever the version

A peer: it imports no other peer.

May import: mediator.model, mediator.settings, mediator.http
Outside the standard library: pydantic, requests
"""
