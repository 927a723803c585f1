"""switchover's actors: key profiles, model health, chain workers and their supervisor."""

from ._cell import Cell as Cell
from ._chain import ChainActor as ChainActor
from ._directory import Directory as Directory
from ._health import HealthActor as HealthActor
from ._profile import ProfileActor as ProfileActor
from ._supervisor import Supervisor as Supervisor
from ._supervisor import SupervisorActor as SupervisorActor

__all__ = [
    "Cell",
    "ChainActor",
    "Directory",
    "HealthActor",
    "ProfileActor",
    "Supervisor",
    "SupervisorActor",
]
