"""Command-line entry points: ``slimguard controller`` (and, later, ``webhook`` and ``check``)."""
