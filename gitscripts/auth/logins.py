"""What a new login may be, and when two logins name the same account.

A login is shown as a commit's author, sent as the user part of git's Basic auth (`login:password`)
and read by people next to other people's logins, so it must be exactly what it looks like. A new
login is NFKC-normalised (a fullwidth `a`, U+FF41, is an `a`) and refused when it
holds a control, format (zero-width) or whitespace character or a `:`, or when it mixes letters of
look-alike alphabets (Latin with Cyrillic or Greek: `admin` with a Cyrillic `a`, U+0430).

Two logins are one account when their NFKC case folds are equal (`Alice`, `ALICE`, a fullwidth
`alice`). Accounts registered before these rules keep their login as stored: looked up by exactly
that login first, they keep working.
"""

from __future__ import annotations

import unicodedata

from gitscripts import errors

MIN_LENGTH = 3
MAX_LENGTH = 50
# Alphabets whose letters are drawn alike: a login may use one of them, never two.
_LOOK_ALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")


def login_key(login: str) -> str:
    """What two logins of one account have in common (Unicode's NFKC_Casefold, near enough)."""
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", login).casefold())


def _script_of(letter: str) -> str | None:
    name = unicodedata.name(letter, "")
    return next((script for script in _LOOK_ALIKE_SCRIPTS if name.startswith(script + " ")), None)


def _problem(login: str) -> str | None:
    if not MIN_LENGTH <= len(login) <= MAX_LENGTH:
        return f"A login has {MIN_LENGTH} to {MAX_LENGTH} characters."
    for char in login:
        category = unicodedata.category(char)
        # C*: control, format (zero-width), surrogate, private use, unassigned; Z*: separators.
        if category[0] in "CZ" or char.isspace():
            return "A login cannot contain spaces, line breaks or invisible characters."
        if char == ":":
            return "A login cannot contain ':' (git uses it to separate login and password)."
    scripts = {_script_of(char) for char in login if unicodedata.category(char).startswith("L")}
    scripts.discard(None)
    if len(scripts) > 1:
        return (
            "A login cannot mix Latin, Cyrillic and Greek letters (some of them look the same); "
            "use letters of one alphabet."
        )
    return None


def normalize_new_login(login: str) -> str:
    """The login a new account gets, or ValidationError saying in plain words what is wrong."""
    normalized = unicodedata.normalize("NFKC", login)
    problem = _problem(normalized)
    if problem:
        raise errors.ValidationError(problem, field="login")
    return normalized
