"""Parameter checks shared by every public function: one place, one wording.

Each check accepts what a person or a form is likely to send (Python and numpy
numbers, numeric strings such as ``"1e6"``, ``"true"``/``"false"``) and
returns a plain Python value, or raises ``ValueError`` with one sentence that
names the parameter and says what to pass.
"""

import math
import numbers
import os
import string

import numpy as np

#: seeds are integers in [0, SEED_LIMIT): numpy, torch and scikit-learn all take them
SEED_LIMIT = 2**32

#: bounds of the numeric parameters that have no natural limit (README, "Parameter bounds")
MAX_N_SAMPLES = 10**10  # ZCore sampling iterations: 10,000 per sample at 1M samples
MAX_EPOCHS = 10_000  # mimic passes over the data


def max_workers():
    """The most workers or threads a run may start: 4 per CPU, at most 64 (and at least 4)."""
    return max(4, min(64, 4 * (os.cpu_count() or 1)))


def available_memory():
    """Bytes of memory available now (physical memory when that cannot be read)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # noqa: BLE001 - psutil missing or unsupported: fall back to physical memory
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def _range_text(minimum, maximum):
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _as_number(value):
    """A float from a number or numeric string, or None when it is not one."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, str):
        try:
            return float(value.strip().replace("_", ""))
        except ValueError:
            return None
    if isinstance(value, numbers.Real):
        return float(value)
    return None


def integer(name, value, *, minimum=None, maximum=None):
    """An integer (``5``, ``np.int64(5)``, ``5.0``, ``"5"``, ``"1e6"``) within bounds."""
    kind = "a positive integer" if minimum == 1 and maximum is None else "an integer" + _range_text(minimum, maximum)
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)):
        result = int(value)
    else:
        number_ = _as_number(value)
        if number_ is None or not math.isfinite(number_) or number_ != int(number_):
            raise ValueError(f"{name} must be {kind}, got {value!r}")
        result = int(number_)
    if (minimum is not None and result < minimum) or (maximum is not None and result > maximum):
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return result


def number(name, value, *, minimum=None, maximum=None, above=None, below=None):
    """A finite float within bounds (``above``/``below`` are exclusive)."""
    result = _as_number(value)
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if above is not None:
        bounds.append(f"> {above}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    if below is not None:
        bounds.append(f"< {below}")
    if bounds == ["> 0.0"] or bounds == ["> 0"]:
        text = f"{name} must be a positive finite number"
    else:
        text = f"{name} must be a finite number" + (" " + " and ".join(bounds) if bounds else "")
    if result is None or not math.isfinite(result):
        raise ValueError(f"{text}, got {value!r}")
    if (
        (minimum is not None and result < minimum)
        or (above is not None and result <= above)
        or (maximum is not None and result > maximum)
        or (below is not None and result >= below)
    ):
        raise ValueError(f"{text}, got {value!r}")
    return result


def batch_size(value, bytes_per_item, name="batch_size"):
    """A positive batch size whose items (``bytes_per_item`` each) fit in the memory available now."""
    result = integer(name, value, minimum=1)
    free = available_memory()
    limit = max(1, free // max(1, int(bytes_per_item)))
    if result > limit:
        raise ValueError(
            f"{name} must be <= {limit:,} (what fits in the {free / 2**30:.1f} GiB of memory available now at "
            f"about {int(bytes_per_item):,} bytes per item), got {value!r}; pass a smaller {name}"
        )
    return result


def strings(name, value, what="names"):
    """A list of strings from one string or a list/tuple of strings."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a string or a list of strings ({what}), got {value!r}")
    return list(value)


def template(name, value):
    """A string with exactly one ``{}`` and no other replacement field (``{{``/``}}`` write a brace)."""
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(value) if f is not None]
    except (ValueError, TypeError):
        fields = None
    if not isinstance(value, str) or fields != [("", "", None)]:
        raise ValueError(
            f"{name}: each template must contain exactly one '{{}}' (where the class name goes) and no other "
            f"braces; write a literal brace as '{{{{' or '}}}}', got {value!r}"
        )
    return value


def boolean(name, value):
    """True or False (also numpy bools, 0/1 and the strings true/false, yes/no, on/off)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE
    raise ValueError(f"{name} must be true or false, got {value!r}")


def choice(name, value, choices):
    """One of ``choices`` (strings)."""
    if isinstance(value, str) and value in choices:
        return value
    raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def text(name, value):
    """A non-empty string (surrounding spaces removed)."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def optional(check, name, value, **kwargs):
    """``check(name, value)`` unless value is None or an empty string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return check(name, value, **kwargs)


def seed(value, name="seed"):
    """The seed policy: an integer in [0, 2**32), or None to draw one at random.

    The drawn seed is returned, so runs record it and can be repeated.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return int(np.random.SeedSequence().generate_state(1)[0])
    return integer(name, value, minimum=0, maximum=SEED_LIMIT - 1)


def child_seed(seed_value, *keys):
    """A derived 32-bit seed for one component of a run (deterministic in ``keys``)."""
    return int(np.random.SeedSequence(seed_value, spawn_key=tuple(keys)).generate_state(1)[0])


def fraction(name, value):
    """A rate in [0, 1)."""
    return number(name, value, minimum=0.0, below=1.0)


def callback(name, value):
    """None or a callable."""
    if value is not None and not callable(value):
        raise ValueError(f"{name} must be a callable or None, got {type(value).__name__}")
    return value
