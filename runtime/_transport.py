"""httpx transports that answer the official openai and anthropic SDKs through the chain.

``rt.transport()`` / ``rt.async_transport()`` read a request in the caller's wire format
(:mod:`switchover.providers._serve`), run it through :meth:`Runtime.stream` or
:meth:`Runtime.astream`, and answer in the caller's format whoever served it. No socket and
no thread of their own: the sync transport's response body is read by the SDK's thread
straight from the provider's stream, the async one by the task.

The same transport serves ``httpx`` and ``httpx2`` clients (the anthropic SDK from 2.x and
the openai SDK from 3.x use ``httpx2``, which has httpx's API under another name): the
answer is built from the classes of the module the request came from.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import AsyncIterator, Iterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import httpx

from ._async import AsyncStream
from ._core._config import build_chain
from ._core._errors import StreamInterrupted, SwitchoverError
from ._core._types import Completion
from ._stream import Stream
from .providers._serve import (
    BadInput,
    Dialect,
    Encoder,
    Inbound,
    Reply,
    dialect_for,
    read_json,
    unknown_path,
)

if TYPE_CHECKING:
    from ._runtime import Runtime

_SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache"}


def _module_of(request: httpx.Request) -> ModuleType:
    """``httpx`` or ``httpx2``: the package whose Request this is."""
    return sys.modules[type(request).__module__.partition(".")[0]]


@functools.cache
def _bodies(module: ModuleType) -> tuple[type[Any], type[Any]]:
    """The streamed-body classes for ``module``'s clients (they check the base class)."""
    sync = type("SyncBody", (_SyncBody, module.SyncByteStream), {})
    asynchronous = type("AsyncBody", (_AsyncBody, module.AsyncByteStream), {})
    return sync, asynchronous


def _response(reply: Reply, request: httpx.Request) -> httpx.Response:
    response: httpx.Response = _module_of(request).Response(
        reply.status, headers=reply.headers, content=reply.body, request=request
    )
    return response


def _streamed(request: httpx.Request, served_by: object, body: Any) -> httpx.Response:
    response: httpx.Response = _module_of(request).Response(
        200, headers={**_SSE_HEADERS, **_served_headers(served_by)}, stream=body, request=request
    )
    return response


def _served_headers(served_by: object) -> dict[str, str]:
    model = getattr(served_by, "model", "")
    return {"x-switchover-served-by": model} if model else {}


class _Read:
    """The shared first half of both transports: route, parse, check the chain."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def read(self, request: httpx.Request, content: bytes) -> tuple[Dialect, Inbound] | Reply:
        dialect = dialect_for(request.url.path)
        if dialect is None or request.method != "POST":
            return unknown_path(f"{request.method} {request.url.path}")
        try:
            inbound = dialect.read(read_json(content), request.headers)
            try:
                build_chain(self.runtime.config, inbound.request)
            except SwitchoverError as error:  # a model that resolves nowhere: no call made
                raise BadInput(str(error), status=404, kind="not_found") from None
        except BadInput as error:
            return dialect.bad_input(error)
        return dialect, inbound

    def created(self) -> int:
        return int(self.runtime._clock.wall())

    def whole(self, dialect: Dialect, inbound: Inbound, completion: Completion) -> Reply:
        reply = dialect.whole(completion, inbound, created=self.created())
        headers = {**reply.headers, **_served_headers(completion.served_by)}
        return Reply(reply.status, reply.body, headers)


class Transport(httpx.BaseTransport):
    """The sync transport: ``httpx.Client(transport=rt.transport())``."""

    def __init__(self, runtime: Runtime) -> None:
        self._read = _Read(runtime)
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"Transport({self._runtime!r})"

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        read = self._read.read(request, request.read())
        if isinstance(read, Reply):
            return _response(read, request)
        dialect, inbound = read
        try:
            if not inbound.stream:
                completion = self._runtime.complete(inbound.request)
                return _response(self._read.whole(dialect, inbound, completion), request)
            stream = self._runtime.stream(inbound.request)
        except SwitchoverError as error:
            return _response(dialect.failed(error), request)
        encoder = dialect.encoder(inbound, created=self._read.created())
        body = _bodies(_module_of(request))[0](stream, encoder)
        return _streamed(request, stream.served_by, body)


class _SyncBody:
    """A streamed answer's bytes, encoded as the SDK's thread reads them."""

    def __init__(self, stream: Stream, encoder: Encoder) -> None:
        self._stream = stream
        self._encoder = encoder

    def __iter__(self) -> Iterator[bytes]:
        encode = self._encoder.event
        stream = self._stream
        try:
            first = True
            for event in stream:
                if first:  # the preamble rides with the first event: one read, one chunk
                    first = False
                    yield self._encoder.start() + encode(event)
                else:
                    yield encode(event)
        except StreamInterrupted as error:
            yield self._encoder.interrupted(str(error.kind), str(error))
        except SwitchoverError as error:  # the runtime stopped under the stream
            yield self._encoder.interrupted("stopped", str(error))
        finally:
            stream.close()

    def close(self) -> None:
        self._stream.close()


class AsyncTransport(httpx.AsyncBaseTransport):
    """The asyncio transport: ``httpx.AsyncClient(transport=rt.async_transport())``."""

    def __init__(self, runtime: Runtime) -> None:
        self._read = _Read(runtime)
        self._runtime = runtime

    def __repr__(self) -> str:
        return f"AsyncTransport({self._runtime!r})"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        read = self._read.read(request, await request.aread())
        if isinstance(read, Reply):
            return _response(read, request)
        dialect, inbound = read
        try:
            if not inbound.stream:
                completion = await self._runtime.acomplete(inbound.request)
                return _response(self._read.whole(dialect, inbound, completion), request)
            stream = await self._runtime.astream(inbound.request)
        except SwitchoverError as error:
            return _response(dialect.failed(error), request)
        encoder = dialect.encoder(inbound, created=self._read.created())
        body = _bodies(_module_of(request))[1](stream, encoder)
        return _streamed(request, stream.served_by, body)


class _AsyncBody:
    """A streamed answer's bytes, encoded as the task reads them."""

    def __init__(self, stream: AsyncStream, encoder: Encoder) -> None:
        self._stream = stream
        self._encoder = encoder

    async def __aiter__(self) -> AsyncIterator[bytes]:
        encode = self._encoder.event
        try:
            first = True
            async for event in self._stream:
                if first:
                    first = False
                    yield self._encoder.start() + encode(event)
                else:
                    yield encode(event)
        except StreamInterrupted as error:
            yield self._encoder.interrupted(str(error.kind), str(error))
        except SwitchoverError as error:
            yield self._encoder.interrupted("stopped", str(error))
        finally:
            self._stream.close()

    async def aclose(self) -> None:
        self._stream.close()
