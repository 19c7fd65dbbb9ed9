"""A run, knowing no trigger: a request in, a report out.

request.py    RunRequest: what a trigger asks for, validated once, the same limits
              everywhere
jobs.py       step 1: the (data set, period) pairs, and what each holds
read.py       step 2: CHT read and aggregated, each month once, group by group
pipeline.py   the run, top to bottom (execute, compute)
push.py       steps 3 to 5 for one (data set, period): preflight, read DHIS2, plan
ahead.py      the next batch read and planned on a helper thread while one posts
post.py       steps 6 and 7: post in chunks, map import summaries to rows
results.py    a (data set, period)'s result put together
locks.py      runs never interleave on a (DHIS2, data set, period)
diagnoses.py  step 8: every problem, with what to do (words in wording.py)
summary.py    the report in plain words: one sentence, problems, the resume command
preview.py    CHT's export shape, streamed, without DHIS2
audit.py      what DHIS2 holds beside what CHT computes: a run stopped after step 5
cell.py       CellAsk: one DHIS2 cell, as explain and /explain are asked for it
explain.py    one cell's number, what DHIS2 holds, and every doc behind it
explained.py  what explain found, and its JSON shape and command

May import: mediator.model, mediator.settings, mediator.http, mediator.engine,
mediator.cht, mediator.dhis2
Outside the standard library: pydantic, orjson
"""
