"""The plugin's panels."""

from .coreset_explorer import CoresetExplorer

PANELS = [CoresetExplorer]
