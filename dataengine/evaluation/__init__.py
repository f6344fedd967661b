"""``dataengine eval``: paired evaluation of trained policies on held-out scenes (rates, intervals, tests, report)."""
