"""The controller: watches ImagePolicies and workloads, and keeps every workload's verdict current."""
