"""The human in the loop: the review page (label episodes by keyboard) and whiskers (what a policy intends)."""
