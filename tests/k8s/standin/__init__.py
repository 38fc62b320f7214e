"""The parts of the Kubernetes stand-in; `tests/k8s/kubelet_standin.py` puts them together."""
