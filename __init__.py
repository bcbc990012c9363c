"""@coreset/curation: zero-shot coreset selection for FiftyOne."""

PACKAGE = "coreset_curation"


def package():
    """This plugin as the package ``coreset_curation``, the same name in every process.

    FiftyOne imports a plugin under a synthetic module name; the code runs under
    one stable name instead, so run records (their config classes) and numba's
    on-disk kernel cache resolve in any process that loads the plugin.
    """
    import importlib.util
    import os
    import sys

    if PACKAGE not in sys.modules:
        root = os.path.dirname(os.path.abspath(__file__))
        spec = importlib.util.spec_from_file_location(
            PACKAGE, os.path.join(root, "__init__.py"), submodule_search_locations=[root]
        )
        module = importlib.util.module_from_spec(spec)
        sys.modules[PACKAGE] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[PACKAGE]
            raise
    return sys.modules[PACKAGE]


def register(plugin):
    import importlib

    package()
    operators = importlib.import_module(PACKAGE + ".operators")
    panels = importlib.import_module(PACKAGE + ".panels")
    for operator in operators.OPERATORS + panels.PANELS:
        plugin.register(operator)
