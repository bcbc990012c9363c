"""The plugin's operators."""

from .coreset_view import ComputeCoresetOrder, SaveCoresetView
from .duplicates import FindNearDuplicates
from .embeddings import ComputeEmbeddings
from .mimic import ComputeMimicScores
from .runs import DeleteCoresetRuns
from .zcore import ComputeZCoreScores

OPERATORS = [ComputeEmbeddings, ComputeZCoreScores, ComputeMimicScores, ComputeCoresetOrder, SaveCoresetView,
             DeleteCoresetRuns, FindNearDuplicates]
