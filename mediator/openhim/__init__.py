"""OpenHIM core: its API, the mediator's registration, and the transaction a run becomes.

client.py          OpenhimClient: one method per core API route
agent.py           registration, heartbeat, console config, async transaction updates
console_config.py  the mediator's config from the console, over the file's defaults
envelope.py        a run report as the application/json+openhim envelope
properties.py      its properties box; steps.py: its orchestrations, as steps

It reports runs, so it may import the run; the run knows nothing of OpenHIM.

May import: mediator.model, mediator.settings, mediator.http, mediator.run
Outside the standard library: requests
"""
