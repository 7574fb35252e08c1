"""The ``slimguard`` command: ``controller`` and ``webhook`` (in the cluster), ``check``, ``inspect`` and ``lint``
(in CI), and ``version``; ``main.py`` declares them, ``check.py`` and the renderers serve the CI commands."""
