"""The provider seam, and the built-in HTTP adapters behind it.

An adapter turns one :class:`ProviderCall` into an :class:`EventStream` and reports every
failure as :class:`ProviderFailure`. Pass your own adapters to ``Runtime(providers=...)``;
:class:`SSEDecoder` is the built-in adapters' server-sent-events decoder, for your own.
"""

from ._seam import EventStream as EventStream
from ._seam import Provider as Provider
from ._seam import ProviderCall as ProviderCall
from ._seam import ProviderFailure as ProviderFailure
from ._sse import SSEDecoder as SSEDecoder
from ._sse import SSEError as SSEError

__all__ = ["EventStream", "Provider", "ProviderCall", "ProviderFailure", "SSEDecoder", "SSEError"]
