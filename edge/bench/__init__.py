"""``python -m edge.bench``: the command is :mod:`edge.bench.__main__`; what it measures
with is in :mod:`edge.measure`."""
