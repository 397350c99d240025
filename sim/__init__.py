"""sim: the SimPy capacity model (issue #5, in progress)."""
