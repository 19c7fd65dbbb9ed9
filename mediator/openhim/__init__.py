"""OpenHIM core: its API, the mediator's registration and the transaction envelope."""
