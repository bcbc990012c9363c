"""Form pieces and parameter plumbing shared by the operators.

One source for each default: a parameter's default is the default of the
bridge function the operator calls, read from its signature, both for the
App form and for the SDK call (``foo.get_operator(uri)(dataset, ...)``).
"""

import inspect

import fiftyone.operators.types as types


def defaults_of(function):
    """``{name: default}`` of a function's keyword parameters."""
    return {
        name: p.default
        for name, p in inspect.signature(function).parameters.items()
        if p.default is not inspect.Parameter.empty
    }


def bridge_kwargs(function, params, *, skip=()):
    """The parameters ``function`` takes, from a form's params; empty values mean "the default".

    The App does not send parameters of fields the user never showed, and
    sends None for cleared inputs: both fall back to the function's default.
    """
    names = set(inspect.signature(function).parameters) - {"collection", "progress"} - set(skip)
    return {k: v for k, v in params.items() if k in names and v is not None and v != "" and v != []}


def sdk_kwargs(function, kwargs):
    """Checks the keyword arguments of an SDK call against ``function``; returns them."""
    names = set(inspect.signature(function).parameters) - {"collection"}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {unknown}; this operator takes {sorted(names - {'progress'})}"
        )
    return kwargs


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
                                  overwrite=bool(ctx.params.get("overwrite")))
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
