"""The mediator process: Flask app, run queue, history, status page."""
