"""The one HTTP layer: TLS, timeouts, retries, recording, masking."""
