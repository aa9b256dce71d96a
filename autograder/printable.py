"""Text from a submission made safe to show: control characters escaped.

Names, messages and outputs come from learners; printed raw they would act on
the instructor's terminal, CSV viewer or editor instead of showing.
"""
import re

# Characters that act instead of showing in a terminal, a CSV viewer or an
# editor: C0 controls (ANSI escapes start with ESC), DEL, C1 controls, the
# Unicode bidirectional marks, embeddings, overrides and isolates
# ("Trojan Source"), and the line and paragraph separators.
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
# nbconvert turns these (SGR: colours, bold) into HTML; every other escape sequence would reach the page.
SGR = re.compile(r"\x1b\[[0-9;]*m")


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every character of :data:`CONTROL` but those in ``keep``
    written as a visible escape (``\\x1b``, ``\\u202e``); printable text, any
    script, is kept."""
    return CONTROL.sub(lambda m: m[0] if m[0] in keep else
                       f"\\x{ord(m[0]):02x}" if ord(m[0]) < 0x100 else f"\\u{ord(m[0]):04x}", text)


def terminal_text(text: str) -> str:
    """A cell's text output (stream, traceback) as safe to render: controls
    escaped but line breaks, tabs and the colour sequences nbconvert renders."""
    plain = SGR.split(text)
    colours = SGR.findall(text) + [""]
    return "".join(escape_controls(part, "\n\t\r") + colour for part, colour in zip(plain, colours))
