"""What the benchmarks share, one module a job:

- `measure`: CPU seconds and memory of a process (/proc), percentiles, Prometheus counters, the machine;
- `decision_times`: slimguard's decision times as raw samples (its `--decision-times` file, its Server-Timing
  header) and their exact percentiles;
- `tables`: the Markdown tables every report prints, and their "Met" column;
- `processes`: the log line, the work directory, py-spy profiles of a running process;
- `apiserver`: the admin REST client each benchmark drives the control plane with;
- `webhooks`: the admission benchmarks' bed: the namespace, slimguard's webhook replica and the always-allow
  floor beside it, and switching the apiserver from one to the other.

The Kubernetes object bodies are the test bed's (`slimguard_testbed.workloads`), shared with the e2e tests.
"""
