"""Baselines the chaos benchmark compares switchover against.

- :mod:`bench.baselines.seed`: **seed**, a faithful Python port of the reference
  ``FailoverManager`` (rsclaw-provider, commit dfe4a3d), defects included. It is where this
  project started, not a straw man of our making.
- :mod:`bench.baselines.litellm_router`: LiteLLM's ``Router`` with the same deployments,
  keys and fallbacks (only when the ``bench`` extra is installed).
"""
