"""The provider seam, and the built-in HTTP adapters behind it.

An adapter turns one :class:`ProviderCall` into an :class:`EventStream` and reports every
failure as :class:`ProviderFailure`. Pass your own adapters to ``Runtime(providers=...)``.
"""

from ._seam import EventStream as EventStream
from ._seam import Provider as Provider
from ._seam import ProviderCall as ProviderCall
from ._seam import ProviderFailure as ProviderFailure

__all__ = ["EventStream", "Provider", "ProviderCall", "ProviderFailure"]
