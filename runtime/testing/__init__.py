"""switchover's test kit: a fake clock, a scripted provider, a fake server, the history checker,
and crash and hold injection into a running runtime's actors (``inject_crash``, ``inject_hold``).

Both fakes play the same steps (``Reply``, ``Fail``, ``StreamError``, ``Cut``, ``Hang``,
``Refuse``); the server adds the hostile answers only HTTP can give.

Example:
    >>> provider = ScriptedProvider()
    >>> provider.script("gpt-4o", Fail(429, {"error": {"code": "rate_limit_exceeded"}}),
    ...                 Reply("hi"))
    >>> rt = Runtime(config, providers={"openai": provider})
    >>> with FakeServer() as server:      # the same, over real HTTP
    ...     server.script("gpt-4o", Fail(429, {"error": {"code": "rate_limit_exceeded"}}))
"""

from ._fakeserver import EmptyBody as EmptyBody
from ._fakeserver import FakeServer as FakeServer
from ._fakeserver import Html as Html
from ._fakeserver import HugeLine as HugeLine
from ._fakeserver import InvalidUtf8 as InvalidUtf8
from ._fakeserver import JsonBody as JsonBody
from ._fakeserver import ResetMidHeaders as ResetMidHeaders
from ._fakeserver import ServerCall as ServerCall
from ._fakeserver import ServerRequest as ServerRequest
from ._fakeserver import ServerRule as ServerRule
from ._fakeserver import ServerStep as ServerStep
from ._fakeserver import Trickle as Trickle
from ._fakeserver import TruncatedJson as TruncatedJson
from ._fakeserver import WrongContentType as WrongContentType
from ._fakeserver import closed_port_url as closed_port_url
from ._fakeserver import connect_blackhole as connect_blackhole
from ._history import RULES as RULES
from ._history import History as History
from ._history import Violation as Violation
from ._history import check as check
from ._inject import inject_crash as inject_crash
from ._inject import inject_hold as inject_hold
from ._script import Cut as Cut
from ._script import Fail as Fail
from ._script import Hang as Hang
from ._script import Refuse as Refuse
from ._script import Reply as Reply
from ._script import Step as Step
from ._script import StreamError as StreamError
from ._scripted import FLEET_MODELS as FLEET_MODELS
from ._scripted import MIXED_FAULTS as MIXED_FAULTS
from ._scripted import Call as Call
from ._scripted import FakeClock as FakeClock
from ._scripted import ScriptedProvider as ScriptedProvider
from ._scripted import failure as failure
from ._scripted import fleet_config as fleet_config
from ._scripted import random_faults as random_faults

__all__ = [
    "Call",
    "Cut",
    "EmptyBody",
    "FLEET_MODELS",
    "Fail",
    "FakeClock",
    "FakeServer",
    "Hang",
    "History",
    "Html",
    "HugeLine",
    "InvalidUtf8",
    "JsonBody",
    "MIXED_FAULTS",
    "RULES",
    "Refuse",
    "Reply",
    "ResetMidHeaders",
    "ScriptedProvider",
    "ServerCall",
    "ServerRequest",
    "ServerRule",
    "ServerStep",
    "Step",
    "StreamError",
    "Trickle",
    "TruncatedJson",
    "Violation",
    "WrongContentType",
    "check",
    "closed_port_url",
    "connect_blackhole",
    "failure",
    "fleet_config",
    "inject_crash",
    "inject_hold",
    "random_faults",
]
