"""switchover: an LLM provider failover runtime built as pykka actors.

Example:
    >>> from switchover import Config, ProviderConfig, Request, Runtime
    >>> with Runtime(Config.from_toml("switchover.toml")) as rt:
    ...     print(rt.complete(Request(model="openai/gpt-4o", messages=[...])).text)
"""

import logging
from typing import TYPE_CHECKING, Any

from ._core._classify import Failure as Failure
from ._core._classify import classify as classify
from ._core._clock import Clock as Clock
from ._core._clock import SystemClock as SystemClock
from ._core._config import Config as Config
from ._core._config import CooldownConfig as CooldownConfig
from ._core._config import ProviderConfig as ProviderConfig
from ._core._config import RetryConfig as RetryConfig
from ._core._errors import ChainExhausted as ChainExhausted
from ._core._errors import ConfigError as ConfigError
from ._core._errors import DeadlineExceeded as DeadlineExceeded
from ._core._errors import RequestRejected as RequestRejected
from ._core._errors import RuntimeStoppedError as RuntimeStoppedError
from ._core._errors import StreamInterrupted as StreamInterrupted
from ._core._errors import SwitchoverError as SwitchoverError
from ._core._observe import AttemptBegan as AttemptBegan
from ._core._observe import AttemptRecord as AttemptRecord
from ._core._observe import KeyChange as KeyChange
from ._core._observe import ModelChange as ModelChange
from ._core._observe import Observer as Observer
from ._core._observe import RequestClosed as RequestClosed
from ._core._observe import RequestOpened as RequestOpened
from ._core._snapshot import ActorSnapshot as ActorSnapshot
from ._core._snapshot import Handled as Handled
from ._core._snapshot import RuntimeSnapshot as RuntimeSnapshot
from ._core._types import Attempt as Attempt
from ._core._types import Completion as Completion
from ._core._types import Done as Done
from ._core._types import Event as Event
from ._core._types import ModelHealth as ModelHealth
from ._core._types import ReasoningDelta as ReasoningDelta
from ._core._types import Request as Request
from ._core._types import ServedBy as ServedBy
from ._core._types import TextDelta as TextDelta
from ._core._types import ToolCall as ToolCall
from ._core._types import Usage as Usage
from ._core._version import __version__ as __version__
from ._core._vocab import ErrorKind as ErrorKind
from ._core._vocab import HealthState as HealthState
from ._debug import DebugServer as DebugServer
from .providers._seam import EventStream as EventStream
from .providers._seam import Provider as Provider
from .providers._seam import ProviderCall as ProviderCall
from .providers._seam import ProviderFailure as ProviderFailure

if TYPE_CHECKING:
    from ._async import AsyncStream as AsyncStream
    from ._runtime import Runtime as Runtime
    from ._stream import Stream as Stream


def __getattr__(name: str) -> Any:
    # The facade imports ``actors``, which imports the pure modules above; loading it on
    # first use keeps ``import actors`` and ``import runtime`` free of a cycle in any order.
    if name == "Runtime":
        from ._runtime import Runtime

        return Runtime
    if name == "Stream":
        from ._stream import Stream

        return Stream
    if name == "AsyncStream":
        from ._async import AsyncStream

        return AsyncStream
    raise AttributeError(f"module 'switchover' has no attribute {name!r}")


# A library's logger stays silent until the application configures logging.
logging.getLogger("switchover").addHandler(logging.NullHandler())


__all__ = [
    "ActorSnapshot",
    "AsyncStream",
    "Attempt",
    "AttemptBegan",
    "AttemptRecord",
    "ChainExhausted",
    "Clock",
    "Completion",
    "Config",
    "ConfigError",
    "CooldownConfig",
    "DeadlineExceeded",
    "DebugServer",
    "Done",
    "ErrorKind",
    "Event",
    "EventStream",
    "Failure",
    "Handled",
    "HealthState",
    "KeyChange",
    "ModelChange",
    "ModelHealth",
    "Observer",
    "Provider",
    "ProviderCall",
    "ProviderConfig",
    "ProviderFailure",
    "ReasoningDelta",
    "Request",
    "RequestClosed",
    "RequestOpened",
    "RequestRejected",
    "RetryConfig",
    "Runtime",
    "RuntimeSnapshot",
    "RuntimeStoppedError",
    "ServedBy",
    "Stream",
    "StreamInterrupted",
    "SwitchoverError",
    "SystemClock",
    "TextDelta",
    "ToolCall",
    "Usage",
    "classify",
]
