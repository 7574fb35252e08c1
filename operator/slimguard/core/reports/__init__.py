"""Verdicts and facts as others read them: the CLI's JSON documents (``report``) and PolicyReport results
(``policy_report``). The top of the core: nothing in it imports these.
"""
