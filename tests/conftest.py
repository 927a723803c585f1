"""Shared fixtures."""

import freezegun

# freezegun would also freeze the timeouts of pykka's futures (and so hang live actors):
# frozen time is only ever meant for switchover's own wall-clock logic.
freezegun.configure(extend_ignore_list=["pykka"])
