"""Progress of a run made of phases (read, compute, write), as one fraction."""


def phases(progress):
    """``report(lo, hi)`` maps a phase's fraction in [0, 1] onto [lo, hi] of the whole run.

    ``progress`` is None or a callable taking the overall fraction; it may
    raise to cancel the run (the operators do, on App cancel or Ctrl-C).
    """

    def report(lo, hi):
        if progress is None:
            return _ignore
        return lambda fraction: progress(lo + (hi - lo) * min(max(float(fraction), 0.0), 1.0))

    return report


def _ignore(fraction):
    return None
