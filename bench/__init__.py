"""The chaos benchmark and the overhead benchmark (``switchover chaos``, ``switchover bench``).

Only the command line imports this package, lazily. It uses the public API of ``runtime``
and ``runtime.testing``, nothing private.
"""
