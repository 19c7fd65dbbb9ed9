"""OpenHIM mediator that moves CHT target aggregates into DHIS2 dataValueSets."""

__version__ = "0.1.0"
