"""Syntax highlighting of script sources: Pygments HTML for the UI, and the stylesheet it needs.

The HTML is only the highlighted spans, to go inside `<pre class="hl"><code>`: one output line per
source line (so the UI can number lines or jump to one), classes rather than inline styles (so the
UI's theme decides the colours), every character of the source escaped.
"""

from __future__ import annotations

import html as html_text
from functools import cache, lru_cache

from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer

# The class the UI puts on the element around the HTML; every rule of `stylesheet()` is under it,
# so Pygments' short class names (`k`, `nf`, `s2`) cannot clash with the UI's own.
CSS_CLASS = "hl"
_STYLE = "default"  # Pygments' light theme
_DARK_STYLE = "github-dark"  # for a system in dark mode

# The lexer keeps leading and trailing blank lines (its defaults strip them, shifting every line).
_LEXER = PythonLexer(stripnl=False, ensurenl=False)
_FORMATTER = HtmlFormatter(nowrap=True, style=_STYLE, cssclass=CSS_CLASS)
# Pygments needs about a second per 150,000 characters: past this size the source is shown
# escaped but uncoloured, so the page stays quick.
HIGHLIGHT_LIMIT = 100_000


# A version's source never changes, and the same versions are viewed again and again.
@lru_cache(maxsize=32)
def highlight_python(source: str) -> str:
    """`source` as highlighted HTML with exactly as many line breaks as the source has."""
    # Pygments reads `\r\n` and `\r` as `\n`; doing it first keeps the count comparable.
    text = source.replace("\r\n", "\n").replace("\r", "\n")
    if len(text) > HIGHLIGHT_LIMIT:
        return html_text.escape(text, quote=False)
    html: str = highlight(text, _LEXER, _FORMATTER)
    # The formatter ends its last line with a break even when the source's last line has none.
    if not text.endswith("\n"):
        html = html.removesuffix("\n")
    return html


@cache
def stylesheet(dark: bool = False) -> str:
    """The CSS for the classes `highlight_python` uses, light theme (or the dark one), scoped
    under `.hl`.

    Only the token and background rules: Pygments' full stylesheet also styles every `pre` and
    line-number table on the page, which is the UI's business.
    """
    scope = f".{CSS_CLASS}"
    formatter = (
        HtmlFormatter(nowrap=True, style=_DARK_STYLE, cssclass=CSS_CLASS) if dark else _FORMATTER
    )
    rules = [
        *formatter.get_background_style_defs(scope),
        *formatter.get_token_style_defs(scope),
    ]
    return "\n".join(rules) + "\n"
