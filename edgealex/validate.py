"""The one validator for numeric options (floats and their ranges).

Every float a user passes (``--duration``, ``--threshold``, ``--min-agreement``, ``--lr``, power
intervals, ...) goes through :func:`check_float` at the library boundary that receives it, so
``nan``, ``inf`` and out-of-range values are refused with the same words everywhere. Python's
``float("nan")`` compares False with everything, which is how ``--duration nan`` used to slip past
``<= 0`` tests.

Device-side module: Python 3.6 compatible.
"""

import math

from edgealex.errors import EdgeAlexError


def check_float(option, value, low=None, high=None, low_open=False, high_open=False, allow_none=False,
                example=None, uri=None):
    """A finite float inside ``[low, high]`` (bounds optional, each may be open), or a user error.

    Args:
        option (str): the option as the user spelled it, e.g. "--duration".
        value: the value (int, float or a numeric string).
        low (float or None): lower bound. Defaults to None (no bound).
        high (float or None): upper bound. Defaults to None (no bound).
        low_open (bool): ``low`` itself is not allowed (``> low``). Defaults to False.
        high_open (bool): ``high`` itself is not allowed (``< high``). Defaults to False.
        allow_none (bool): None passes through (an unset optional). Defaults to False.
        example (str or None): a valid value shown in the fix. Defaults to a value inside the range.
        uri (str or None): the source or sink URI whose query option ``option`` is (e.g. "fps"):
            the error names the URI and says ``option=value``. Defaults to None (a CLI option).

    Returns:
        float or None: the value as a float.

    Raises:
        EdgeAlexError: not a number, nan/inf, or outside the range.
    """
    if value is None and allow_none:
        return None
    if isinstance(value, bool):
        value = None
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = None
    lower = "" if low is None else (f"> {low:g}" if low_open else f">= {low:g}")
    upper = "" if high is None else (f"< {high:g}" if high_open else f"<= {high:g}")
    wanted = " and ".join(part for part in (lower, upper) if part) or "any finite number"
    if example is None:
        if low is not None and high is not None:
            example = f"{(low + high) / 2.0:g}"
        elif low is not None:
            example = f"{low + 1 if low_open or low == 0 else low:g}"
        elif high is not None:
            example = f"{high - 1 if high_open else high:g}"
        else:
            example = "1"
    wanted_text = wanted if low is None and high is None else "a finite number " + wanted
    if uri is None:
        subject, name, fix = option, "", f"pass {option} {example} ({wanted_text})"
    else:
        subject, name, fix = uri, f"{option} ", f"set {option}={example} in the URI ({wanted_text})"
    if number is None:
        raise EdgeAlexError(subject, f"{name}{value!r} is not a number", fix)
    if not math.isfinite(number):
        raise EdgeAlexError(subject, f"{name}{value} is not a finite number", fix)
    below = low is not None and (number < low or (low_open and number == low))
    above = high is not None and (number > high or (high_open and number == high))
    if below or above:
        if low is not None and high is not None:
            rule = "between {:g} and {:g}{}".format(low, high, f" ({wanted})" if low_open or high_open else "")
        else:
            rule = lower or upper
        raise EdgeAlexError(subject, f"{name}must be {rule}, got {number:g}", fix)
    return number
