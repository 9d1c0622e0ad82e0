"""Writing GLib key files (the format of nvinfer and deepstream-app configs).

Pure Python, Python 3.6 compatible. Rules (facts §1.1, §1.8; checked with GLib 2.74's own parser
in the tests):

- ``[group]`` headers, ``key=value`` lines, lists separated by ``;``, booleans ``1``/``0``;
- comments only on lines of their own starting with ``#``: GLib keeps ``# ...`` after a value as
  part of the value (``path=model.onnx # c`` is the string ``model.onnx # c``), and after a boolean
  or a double it makes the value unparsable;
- no value may contain a line break.
"""

from edgealex.errors import EdgeAlexError

COMMENT = "#"


def format_value(value):
    """One key-file value: bools as 1/0, floats with repr precision, lists ``;``-joined."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return ";".join(format_value(v) for v in value)
    return str(value)


def format_key_file(groups):
    """Render groups of entries as a GLib key file.

    Args:
        groups (list): ``(group name, entries)`` pairs; an entry is ``(key, value)`` or
            ``("#", comment text)`` for a whole-line comment. ``None`` values are left out.

    Returns:
        str: the file text, newline-terminated.

    Raises:
        EdgeAlexError: a value holds a line break (it would end the line) or a key is empty.
    """
    lines = []
    for name, entries in groups:
        if lines:
            lines.append("")
        lines.append(f"[{name}]")
        for key, value in entries:
            if key == COMMENT:
                for part in str(value).splitlines() or [""]:
                    lines.append("# " + part if part else "#")
                continue
            if value is None:
                continue
            text = format_value(value)
            if not key or "=" in key or "\n" in text or "\r" in text:
                raise EdgeAlexError(f"[{name}] {key}", f"cannot be written as a key-file line ({text!r})",
                                    "remove line breaks from the value")
            lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"
