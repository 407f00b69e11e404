"""The kubelet: pods as local processes on their own loopback IPs (see ``controller``)."""

from .controller import Kubelet

__all__ = ["Kubelet"]
