"""@coreset/curation: zero-shot coreset selection for FiftyOne."""


def register(plugin):
    from .operators import OPERATORS
    from .panels import PANELS

    for operator in OPERATORS + PANELS:
        plugin.register(operator)
