"""Offline replay: recorded windows (test-bed datasets, daemon journals) → checks, training,
evaluation.

``scxd replay VERB``: each verb is a module in this package registered in
:data:`scxd.replay.cli.VERBS`.  :mod:`scxd.replay.data` loads datasets and refuses to mix
feature-schema versions; :mod:`scxd.replay.stats` holds the rank statistics.
"""
