"""The mediator process: the only package that imports Flask.

app.py      the Flask app factory and its thin views (/push, /coverage, /audit, /explain,
            /, /health)
audits.py   /audit: the configuration, the audit, refusals as statuses
explains.py /explain: one cell's explanation, refusals as statuses, the page
runs.py     RunService: one run at a time, sync or async, the OpenHIM answer
queue.py    the run queue; records.py: what a run leaves in the history
history.py  the runs kept for the status page; render.py and templates/: the page
serve.py    python -m mediator serve: configuration, registration, schedule

May import: mediator.model, mediator.settings, mediator.http, mediator.cht,
mediator.dhis2, mediator.run, mediator.openhim
Outside the standard library: flask, werkzeug, jinja2, apscheduler, pydantic
"""
