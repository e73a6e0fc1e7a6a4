"""MkDocs hook: the docstrings are written for Sphinx-style readers (``:class:`X```, ``Example::``); on the site,
a role renders as its code span and ``Example::`` as a plain "Example:" heading."""

from __future__ import annotations

import re
from typing import Any

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc):(?=<code>)")
_LITERAL_BLOCK_LEAD = re.compile(r"<p>(Examples?)::</p>")


def on_page_content(html: str, **kwargs: Any) -> str:
    html = _ROLE.sub("", html)
    return _LITERAL_BLOCK_LEAD.sub(r"<p><strong>\1:</strong></p>", html)
