"""switchover: an LLM provider failover runtime built as pykka actors.

Example:
    >>> from runtime import Config, ProviderConfig, Request, Runtime
    >>> with Runtime(Config.from_toml("switchover.toml")) as rt:
    ...     print(rt.complete(Request(model="openai/gpt-4o", messages=[...])).text)
"""

from typing import TYPE_CHECKING, Any

from ._classify import Failure as Failure
from ._classify import classify as classify
from ._clock import Clock as Clock
from ._clock import SystemClock as SystemClock
from ._config import Config as Config
from ._config import CooldownConfig as CooldownConfig
from ._config import ProviderConfig as ProviderConfig
from ._config import RetryConfig as RetryConfig
from ._debug import DebugServer as DebugServer
from ._errors import ChainExhausted as ChainExhausted
from ._errors import ConfigError as ConfigError
from ._errors import DeadlineExceeded as DeadlineExceeded
from ._errors import ErrorKind as ErrorKind
from ._errors import RequestRejected as RequestRejected
from ._errors import RuntimeStoppedError as RuntimeStoppedError
from ._errors import StreamInterrupted as StreamInterrupted
from ._errors import SwitchoverError as SwitchoverError
from ._providers import EventStream as EventStream
from ._providers import Provider as Provider
from ._providers import ProviderCall as ProviderCall
from ._providers import ProviderFailure as ProviderFailure
from ._snapshot import ActorSnapshot as ActorSnapshot
from ._snapshot import Handled as Handled
from ._snapshot import RuntimeSnapshot as RuntimeSnapshot
from ._types import Attempt as Attempt
from ._types import Completion as Completion
from ._types import Done as Done
from ._types import Event as Event
from ._types import HealthState as HealthState
from ._types import ModelHealth as ModelHealth
from ._types import ReasoningDelta as ReasoningDelta
from ._types import Request as Request
from ._types import ServedBy as ServedBy
from ._types import TextDelta as TextDelta
from ._types import ToolCall as ToolCall
from ._types import Usage as Usage

if TYPE_CHECKING:
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
    raise AttributeError(f"module 'runtime' has no attribute {name!r}")


__all__ = [
    "ActorSnapshot",
    "Attempt",
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
    "ModelHealth",
    "Provider",
    "ProviderCall",
    "ProviderConfig",
    "ProviderFailure",
    "ReasoningDelta",
    "Request",
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
