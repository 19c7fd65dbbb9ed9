"""The numbers: CHT target docs and places to DHIS2 data values. Pure: no I/O, no framework.

mapping.py      what CHT's app settings and contacts map (targets to data elements,
                places to org units, lineages, who writes targets), and skip reasons
aggregation.py  Aggregation: one data set and period summed per org unit, page by page
sync.py         who synced, for coverage
explain.py      WatchedAggregation: one org unit's aggregation, noting what each doc did

The one code path that decides a number: preview, push and explain all use it.

May import: mediator.model
Outside the standard library: nothing
"""
