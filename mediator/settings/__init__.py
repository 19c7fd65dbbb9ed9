"""Configuration: the environment's variables, the settings read from them, secrets."""
