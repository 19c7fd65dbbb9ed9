"""CHT's API (CouchDB's protocol, through CHT's API): the reader and the contacts it keeps.

client.py   ChtReader: app settings, places, target pages, docs by id, the changes feed
answers.py  what CHT's answers mean: winning revisions, shapes, why a read was refused
cache.py    the contacts kept between runs, checked against the changes feed
revisions.py  for explain: the listed docs' losing revisions, place names, deleted owners

A peer: it imports no other peer.

May import: mediator.model, mediator.settings, mediator.http, mediator.engine
Outside the standard library: orjson
"""
