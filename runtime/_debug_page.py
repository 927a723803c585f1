"""The debug server's live page: one self-contained HTML file (no build step, no CDN).

The page polls ``GET /debug/live`` once a second and counts cooldowns down between polls;
it inserts every string from the server as text, never as HTML. Its inline script and
style are allowed by hash in a strict Content-Security-Policy, so nothing else can run.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib import resources

PAGE = resources.files(__package__).joinpath("_debug_page.html").read_bytes()


def _hashes(tag: str) -> str:
    blocks = re.findall(rb"<" + tag.encode() + rb">(.*?)</" + tag.encode() + rb">", PAGE, re.S)
    return " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block).digest()).decode() + "'"
        for block in blocks
    )


#: Headers the page is sent with: only its own script and style run, it talks only to
#: this server, and no other site may frame it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        f"default-src 'none'; script-src {_hashes('script')}; style-src {_hashes('style')}; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
}
