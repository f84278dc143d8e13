"""Run workflows on one machine: an in-process event bus, a thread-pool dispatcher, an embedded store."""
