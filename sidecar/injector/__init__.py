"""The Kubernetes injector: a mutating admission webhook that adds gate-sidecar to annotated
pods as a native sidecar (``gate-sidecar injector --config injector.yaml``)."""
