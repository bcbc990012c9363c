"""Form pieces and parameter plumbing shared by the operators.

One source for each default: a parameter's default is the default of the
bridge function the operator calls, read from its signature, both for the
App form and for the SDK call (``foo.get_operator(uri)(dataset, ...)``).
"""

import difflib
import inspect

import fiftyone.operators.types as types

from ..core import params as P


def defaults_of(function):
    """``{name: default}`` of a function's keyword parameters."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


_CONTEXT = ("collection", "progress")


def resolve(function, given, *, form_only=()):
    """The keyword arguments of ``function`` from an operator's parameters (App form, SDK call or execute_operator).

    Names that ``function`` does not take are refused with the nearest one;
    ``form_only`` names (the form's switches and notices) are ignored; None,
    "" and [] mean the function's default, so every path has the same
    defaults: those of ``function``'s signature. Booleans are checked strictly.
    """
    signature = inspect.signature(function).parameters
    names = [n for n in signature if n not in _CONTEXT]
    kwargs = {}
    for name, value in given.items():
        if name in form_only:
            continue
        if name not in names:
            raise ValueError(_unknown(name, names))
        if value is None or (isinstance(value, (str, list, tuple)) and len(value) == 0):
            continue
        kwargs[name] = P.boolean(name, value) if isinstance(signature[name].default, bool) else value
    missing = [n for n in names if signature[n].default is inspect.Parameter.empty and n not in kwargs]
    if missing:
        raise ValueError(f"missing parameter '{missing[0]}': pass a value for {missing[0]}")
    return kwargs


def _unknown(name, names):
    close = difflib.get_close_matches(str(name), names, n=1)
    if close:
        return f"unknown parameter '{name}'; did you mean '{close[0]}'?"
    return f"unknown parameter '{name}'; this operator takes {', '.join(names)}"


def work(function, view, params, *, form_only=()):
    """``work(progress)`` for :func:`.progress.run`: resolves ``params`` in the run, so a bad one fails it."""
    return lambda progress: function(view, progress=progress, **resolve(function, params, form_only=form_only))


def flag(params, name):
    """A form's boolean, for previews: what the run will use, or False while it is not a boolean."""
    try:
        return P.boolean(name, params.get(name) or False)
    except ValueError:
        return False


def choice(inputs, name, choices, *, label, description=None, default=None, required=False):
    """A dropdown over ``choices`` that still accepts any string from the SDK.

    The bridge validates the value with a message that names the parameter,
    which the schema validator's 'Invalid enum value' would not.
    """
    dropdown = types.DropdownView(label=label, description=description)
    for value in choices:
        dropdown.add_choice(value, label=value)
    return inputs.str(
        name, label=label, description=description, default=default, required=required, view=dropdown
    )


def invalid(prop, message):
    """Marks a form property invalid with a one-sentence message: the App disables Execute."""
    prop.invalid = True
    prop.error_message = message
    return prop


def blocked(inputs, name, label, message):
    """A form that cannot run yet: an error notice, and Execute disabled."""
    inputs.view(name, types.Error(label=label, description=message))
    invalid(inputs.str(f"{name}_reason", default=message, view=types.HiddenView()), message)


def output_field_input(inputs, ctx, view, method, default):
    """The output field box, marked invalid when the field is not this method's to write."""
    from .. import bridge

    prop = inputs.str("score_field", default=default, label="Score field")
    try:
        bridge.check_output_field(view, ctx.params.get("score_field") or default, method, param="score_field",
                                  overwrite=flag(ctx.params, "overwrite"))
    except ValueError as error:
        invalid(prop, str(error))
    return prop


def as_list(value):
    """Accepts a field name or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
