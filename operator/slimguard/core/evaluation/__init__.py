"""Evaluation: (plan, context) → Verdict, and what a verdict means for the one who asked. Pure, no I/O.

``plan`` (which policies select which containers, and all that is read for them; made once per decision),
``matching`` (the selection and exemptions), ``rules/`` (one module a rule family: what it reads and its check),
``evaluate`` (the driver), ``context`` (what the adapters gathered), ``verdict``, ``slimmer_bases`` (which
measured base to suggest), ``outcome`` (denials, warnings, exit status by mode) and ``enforcement`` (whether the
rules decided, or onUnknown did).
"""
