"""k2s-dns: in-cluster DNS for Ingress hosts through CoreDNS's etcd plugin."""

__version__ = "0.1.0"
