"""Deployment helpers for running the lakehouse on Kubernetes (EKS)."""
