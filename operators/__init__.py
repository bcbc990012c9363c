"""The plugin's operators."""

from .coreset_view import SaveCoresetView
from .embeddings import ComputeEmbeddings
from .mimic import ComputeMimicScores
from .zcore import ComputeZCoreScores

OPERATORS = [ComputeEmbeddings, ComputeZCoreScores, ComputeMimicScores, SaveCoresetView]
