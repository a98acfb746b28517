"""`k2s-dns doctor [HOST]`: checks every hop from the Kubernetes object to the DNS answer, in order,
and names the first broken one with the exact command that fixes it.

- checks.py: pure functions over plain dicts (what the API server returned), one per hop;
- cluster.py: reads those dicts from the cluster (the official client, the user's kubeconfig);
- dnsquery.py: a DNS query (dnspython when importable, else the standard library) and the local resolver;
- run.py: the hops in order, stopping at the first failure; report.py: table and JSON output.
"""
