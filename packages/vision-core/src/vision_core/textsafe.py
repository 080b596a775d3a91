"""Terminal-safe text: what a CLI prints of data it did not write itself.

A source id, class name or model name comes from a device or a client. Printed raw, it can
clear the screen (`ESC[2J`), set the window title (`ESC]0;...BEL`), change colours, hide
text (bidi overrides, Trojan Source) or, through the C1 control CSI (U+009B), do all of
that without an ESC byte. Every CLI passes such data through `safe_text` (tables, messages)
or `safe_json` (`--json`), on a terminal and in a pipe alike: a pipe often ends on a
terminal too (`| less -R`, `| tail`).

`UNSAFE_CHARS` is also the character class the wire structs refuse in their strings
(`vision_core.types`), so text that was validated on the way in prints unchanged.
"""

from __future__ import annotations

import re

__all__ = ["SAFE_TEXT_PATTERN", "UNSAFE_CHARS", "is_safe_text", "safe_json", "safe_text"]

# C0 controls, DEL and the C1 controls (CSI, OSC, ST... as single code points), the Arabic
# letter mark, LRM/RLM, line and paragraph separators, the bidi embeddings, overrides and
# isolates, and lone surrogates (not text: they cannot be encoded as UTF-8 at all).
# Written with \u escapes so that the same class is valid in Python and ECMA-262 regexes
# (the OpenAPI `pattern` of the wire structs).
_C0 = r"\u0000-\u001f"
_OTHERS = r"\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
UNSAFE_CHARS = _C0 + _OTHERS
#: a whole string free of UNSAFE_CHARS (msgspec `Meta(pattern=...)`, OpenAPI `pattern`)
SAFE_TEXT_PATTERN = f"^[^{UNSAFE_CHARS}]*$"

_UNSAFE = re.compile(f"[{UNSAFE_CHARS}]")
_JSON_UNSAFE = re.compile(f"[{_OTHERS}]")  # JSON encoders escape C0 themselves
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r", "\x1b": "\\e"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def is_safe_text(text: str) -> bool:
    """True when `text` holds no character of UNSAFE_CHARS."""
    return _UNSAFE.search(text) is None


def safe_text(value: object) -> str:
    """`str(value)` with every unsafe character written as a visible escape.

    ESC becomes `\\e`, tab/newline/CR `\\t \\n \\r`, other C0/C1 controls and DEL `\\xNN`,
    bidi controls and surrogates `\\uNNNN`. Printable text (any script, emoji) is unchanged.
    """
    text = value if isinstance(value, str) else str(value)
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def safe_json(text: str) -> str:
    """JSON text with the unsafe characters that JSON leaves raw written as `\\uNNNN`.

    JSON encoders already escape C0 controls inside strings; DEL, the C1 controls and the
    bidi controls they emit raw. Those characters can only occur inside JSON strings, where
    `\\uNNNN` means the same character: the document parses to the same value.
    """
    return _JSON_UNSAFE.sub(_json_escape, text)
