"""The plugin's operators."""

from .coreset_view import SaveCoresetView
from .zcore import ComputeZCoreScores

OPERATORS = [ComputeZCoreScores, SaveCoresetView]
