"""The command line, a trigger like OpenHIM's route: ``python -m mediator COMMAND``.

commands.py  the parser (each command's --help lists the variables it reads) and main
push.py      push: progress on stderr, the summary or the JSON report, exit status
preview.py   preview: CHT's export shape on stdout
audit.py     audit: what DHIS2 holds beside what CHT computes, as a summary, JSON or CSV
explain.py   explain: why one DHIS2 cell holds its number, in words or JSON
exits.py     exit statuses and the one line a refusal is

It builds a ``RunRequest`` and calls the run, as the service does. The demo command
imports ``devstack`` lazily, and only from a source checkout.

May import: mediator.model, mediator.settings, mediator.http, mediator.cht,
mediator.dhis2, mediator.run, mediator.service
Outside the standard library: requests
"""
