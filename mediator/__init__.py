"""OpenHIM mediator that moves CHT target aggregates into DHIS2 dataValueSets.

``python -m mediator`` is ``cli.py``, on top of the packages, which sit in layers: each
may import only those below it (its ``__init__`` says which; tests/unit/
test_architecture.py keeps the rules)::

    service   the mediator process (Flask, the run queue, the status page)
    openhim   OpenHIM core's API and the transaction a run becomes
    run       a run: request, jobs, read, push, report
    cht dhis2 the peers' APIs (neither imports the other)
    engine    the numbers (pure)
    http      the one HTTP layer
    settings  configuration
    model     the vocabulary
"""

__version__ = "0.1.0"
