"""Form pieces shared by the operators."""

import fiftyone.operators.types as types


def choice(inputs, name, choices, *, label, description=None, default=None, required=False):
    """A dropdown over ``choices`` that still accepts any string from the SDK.

    The bridge validates the value with a message that names the parameter,
    which the schema validator's 'Invalid enum value' would not.
    """
    dropdown = types.DropdownView(label=label, description=description)
    for value in choices:
        dropdown.add_choice(value, label=value)
    inputs.str(name, label=label, description=description, default=default, required=required, view=dropdown)


def as_list(value):
    """Accepts a field name or a list of them."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)
