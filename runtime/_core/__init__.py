"""The pure core: vocabularies, values, errors, configuration and model resolution,
classification, policies, the chain's decision table, clock, redaction and snapshots.

Nothing here starts a thread, does I/O, or imports pykka, httpx, the actors or the providers.
"""
