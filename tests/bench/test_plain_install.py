"""``switchover chaos`` on the plain install: no extras, so no matplotlib and no LiteLLM.

The run completes, prints its table and report, and says once, verbatim, which extra adds
the plots. httpx-sse is blocked as well: nothing may need it any more.
"""

from __future__ import annotations

from pathlib import Path

import support

PLAIN = ("matplotlib", "litellm", "httpx_sse")
PLOTS_HINT = "plots skipped: matplotlib is not installed (pip install 'switchover[chaos]')"


def test_chaos_completes_without_the_extras_and_says_once_what_adds_plots(tmp_path: Path) -> None:
    done = support.run_switchover(
        "chaos",
        "--scenario",
        "rate-limit-storm",
        "--systems",
        "switchover,oracle,litellm",
        "--out",
        str(tmp_path),
        without=PLAIN,
    )

    assert done.returncode == 0, done.stderr
    assert done.stdout.count(PLOTS_HINT) == 1
    assert done.stdout.count("LiteLLM is not installed (pip install 'switchover[bench]')") == 1
    assert (tmp_path / "report.json").is_file()
    assert not list(tmp_path.glob("*.png"))
    assert "Traceback" not in done.stderr


def test_chaos_list_needs_no_extra() -> None:
    done = support.run_switchover("chaos", "--list", without=PLAIN)

    assert done.returncode == 0, done.stderr
    assert "rate-limit-storm: " in done.stdout
