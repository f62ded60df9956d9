"""Model-based convergence at scale: seeded histories run against the real local servers.

``history.py`` generates a history from a seed, ``world.py`` holds the local stack and the real
entry points, ``executor.py`` runs a history and delivers its S3 events, ``model.py`` records
what S3 stored, ``checker.py`` states and checks the properties, ``runner.py`` runs thousands
and reports (``python -m tests.convergence``; docs/CONVERGENCE.md).
"""
