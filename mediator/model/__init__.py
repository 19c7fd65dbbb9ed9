"""The vocabulary every part speaks: what crosses a module boundary, as plain models.

values.py    a data value and a data value set (CHT's export shape), DHIS2 ids, an
             HTTP exchange as recorded for OpenHIM, times
periods.py   DHIS2 periods and CHT's months (which months a quarter holds…)
report.py    the run report: per (data set, period) what was read, sent, refused and why

No I/O, no behaviour beyond small derived values: every other package may import it.

May import: nothing
Outside the standard library: pydantic
"""
