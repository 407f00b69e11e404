"""Streaming subresources of pods: ``exec`` (WebSocket ``v5/v4.channel.k8s.io``) and
``portforward`` (SPDY/3.1 tunneled over a WebSocket, ``SPDY/3.1+portforward.k8s.io``, which
is what kubectl 1.31+ asks for first). The wire formats are pure modules (``channels``,
``spdy``); ``exec`` and ``portforward`` run the sessions."""
