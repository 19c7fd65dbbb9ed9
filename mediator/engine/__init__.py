"""The numbers: CHT target docs and places to DHIS2 data values. Pure."""
