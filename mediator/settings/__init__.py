"""Configuration: the environment's variables, the settings read from them, secrets.

variables.py  the table of every variable operators set (name, example, meaning), and
              the readers that refuse a bad value in one line naming it
config.py     the settings of each peer and of the run, made from the environment
secrets.py    what a secret is, and masking it out of text, headers and reports

May import: mediator.model
Outside the standard library: pydantic
"""
