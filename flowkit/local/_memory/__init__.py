"""The in-memory engine behind ``flowkit.local.embedded``: plain dicts, MongoDB's rules.

- ``values``: what a stored value is (BSON's view: millisecond UTC datetimes, arrays, string keys),
  copying, MongoDB equality, index keys and sort order, dotted-path reads.
- ``filters``: query documents (equality, ``$in``, ``$nin``, ``$ne``, ``$exists``, ``$lt`` ...).
- ``updates``: update documents (``$set``, ``$unset``, ``$inc``, ``$addToSet``, ``$push``),
  validated before anything changes, applied in place with an undo log.
- ``projection``: inclusion and exclusion projections, copying only what is returned.
- ``collection``: one collection (documents by ``_id``, unique indexes, the pymongo methods).

Anything outside this subset raises ``NotImplementedError`` naming what was asked for.
"""
