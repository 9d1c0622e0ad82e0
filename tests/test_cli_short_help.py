"""The one-line command list of `edgealex --help` as the Nano's click shows it.

click < 8.1 (8.0.4 is the last for Python 3.6, the floors use 7.1.2) cuts a command's short help at the
first word that ends with "." - on the Nano `edgealex --help` listed `train  Train an AlexNet classifier
(e.g.`. click 8.1+ cuts at the end of the first sentence, so newer environments never show it.
"""

import re

import typer.main

from edgealex.cli.main import app


def click80_short_help(text, max_length=45):
    """click 8.0.4's ``make_default_short_help`` (src/click/utils.py), which click 7.x shares."""
    words = text.split()
    total_length = 0
    result = []
    done = False
    for word in words:
        if word[-1:] == ".":
            done = True
        new_length = 1 + len(word) if result else len(word)
        if total_length + new_length > max_length:
            result.append("...")
            done = True
        else:
            if result:
                result.append(" ")
            result.append(word)
        if done:
            break
        total_length += new_length
    return "".join(result)


def _commands(group, prefix=""):
    for name, command in sorted(group.commands.items()):
        yield prefix + name, command
        if hasattr(command, "commands"):
            yield from _commands(command, prefix + name + " ")


def test_no_short_help_stops_at_an_abbreviation_on_old_click():
    root = typer.main.get_command(app)
    cut = {}
    for name, command in _commands(root):
        short = click80_short_help((command.help or "").split("\n\n")[0])
        if re.search(r"(\be\.g|\bi\.e|\betc|\bvs|\bcf|\bapprox|\bincl)\.$", short):
            cut[name] = short
    assert not cut, cut
    assert click80_short_help("Train an AlexNet classifier (e.g. on data) and keep it.") == \
        "Train an AlexNet classifier (e.g."  # the emulation is click 8.0's
