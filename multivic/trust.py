"""What a file written by someone else may make multivic do, and what it may show.

A data set, a ``shards.json``, a run directory and an export are data (see DESIGN.md, "Where
files come from"): reading them never runs a command, imports code or reaches outside their
folder unless the user opts in on the command line. Two helpers hold that rule for the values
such files carry:

- :func:`refuse_untrusted_urls`: shard locations that webdataset would open by running a
  command (``pipe:...``) or by fetching a remote URL (``https:``, ``gs:``, ``hf:``, ... each of
  which runs ``curl`` or another tool) are refused unless the user passed
  ``--trust-commands`` (:data:`TRUST_COMMANDS_FLAG`). A value from the user's own recipe or
  command line is theirs and is not checked.
- :func:`terminal_safe`: text from such files printed to a terminal, with control characters
  (escape sequences, carriage returns, bidirectional overrides) shown as ``\\x1b``-style escapes
  instead of acting on the terminal.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from multivic.errors import MultivicError

TRUST_COMMANDS_FLAG = "--trust-commands"

# A URL scheme as urllib parses it (RFC 3986): a letter, then letters, digits, "+", "-" or "."
# Single letters are Windows drive letters ("C:\\data"), which webdataset opens as files.
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
_LOCAL_SCHEMES = ("file",)


def untrusted_urls(values: Any) -> list[str]:
    """The entries of ``values`` (None, a string, or a list of strings) that webdataset would
    open by running a command or fetching from elsewhere: ``pipe:``, any URL scheme other than
    ``file:``, ``-`` (standard input), and ``${VAR}`` (replaced from the environment, so it may
    become any of these).

    Brace patterns and ``::`` lists are checked without expanding them: an alternative that
    starts a scheme anywhere (``{pipe:cmd,a.tar}``) counts, so a huge range cannot cost memory.
    """
    if values is None:
        return []
    items: Iterable[Any] = [values] if isinstance(values, (str, bytes)) else values
    if not isinstance(items, (list, tuple)):
        items = [items]
    found = []
    for item in items:
        text = item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
        if _is_untrusted(text):
            found.append(text)
    return found


def _is_untrusted(text: str) -> bool:
    if "${" in text:
        return True
    for part in text.split("::"):
        stripped = part.strip()
        if stripped == "-":
            return True
        # Every place an alternative of a brace pattern can start: the start, after "{" or ",".
        starts = [0] + [m.end() for m in re.finditer(r"[{,]", stripped)]
        for start in starts:
            match = _SCHEME.match(stripped, start)
            if match and len(match.group(1)) > 1 and match.group(1).lower() not in _LOCAL_SCHEMES:
                return True
    return False


def refuse_untrusted_urls(
    values: Any,
    source: str,
    flag: str = TRUST_COMMANDS_FLAG,
    error: type[MultivicError] = MultivicError,
    trusted: bool = False,
) -> None:
    """Raise ``error`` (one line naming ``source`` and ``flag``) when ``values`` hold a location
    that would run a command or fetch from elsewhere (see :func:`untrusted_urls`), unless
    ``trusted`` (the user passed ``flag``).

    ``source`` names where the values come from, e.g. ``"RUN/config.yaml (data.shards)"`` or
    ``"DATA/shards.json"``.
    """
    if trusted:
        return
    bad = untrusted_urls(values)
    if bad:
        shown = terminal_safe(bad[0] if len(bad[0]) <= 80 else bad[0][:77] + "...")
        more = f" and {len(bad) - 1} more" if len(bad) > 1 else ""
        raise error(
            f"{source} names {shown!r}{more}, which would run a command or fetch from another machine; "
            f"a file written by someone else may not do that: pass {flag} if you trust it, "
            "or give local shards on the command line"
        )


# C0 controls (but "\n" where lines are kept), DEL, C1 controls (0x9b is a CSI on some
# terminals), and the Unicode format characters that reorder or hide text.
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_CONTROL_AND_NEWLINE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def _escape(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: Any, keep_newlines: bool = False) -> str:
    """``text`` with every control character written as an escape (``\\x1b``, ``\\u202e``), so
    that printing it cannot move the cursor, recolour, retitle or rewrite the terminal.
    ``keep_newlines``: line breaks stay (a table of several lines)."""
    pattern = _CONTROL if keep_newlines else _CONTROL_AND_NEWLINE
    return pattern.sub(_escape, str(text))
