"""DHIS2's Web API and what DHIS2 decides: client, metadata, rules, preflight, push plan."""
