"""Runtime tests.

Database fixtures (``database``, ``wire_database``, ``any_database``, ``wire_server``) live in
``tests/conftest.py``. Shared helpers are plain modules next to the tests: ``_harness.py`` (documents,
scenarios, the ``World`` of real store + handlers + Reporter, the invariants), ``_stepper.py`` (one
database operation at a time), ``_worker.py`` (one OS process of the multi-process test).
"""
