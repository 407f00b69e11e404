"""The sandbox's local AWS: ``python -m eks_hub_sandbox.aws_server --port P``.

A moto server (moto's own WSGI app, threaded werkzeug server on 127.0.0.1) behind the
EKS layer in :mod:`eks_hub_sandbox.aws`. Start it with
``MOTO_IAM_LOAD_MANAGED_POLICIES=true`` so AWS-managed IAM policies can be attached;
``runbook sandbox up`` does.

Faults can be injected on loopback (``POST /_sandbox/faults``; see
:mod:`eks_hub_sandbox.aws.faults`): the next N matching calls fail with an AWS error
(throttling, 503, NotFound right after a create) so retries can be tested.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path

from .aws.server import make_aws_server


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m eks_hub_sandbox.aws_server", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--kube-url", default=None, help="URL returned as every EKS cluster's endpoint")
    parser.add_argument("--kube-ca-file", type=Path, default=None,
                        help="PEM returned (base64) as every cluster's certificateAuthority, read per request")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM or SIGINT."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if os.environ.get("MOTO_IAM_LOAD_MANAGED_POLICIES", "").lower() != "true":
        print("warning: MOTO_IAM_LOAD_MANAGED_POLICIES is not 'true'; attaching AWS-managed IAM policies will fail",
              file=sys.stderr, flush=True)
    server = make_aws_server(args.port, args.kube_url, args.kube_ca_file)
    if args.verbose:
        logging.getLogger("werkzeug").setLevel(logging.INFO)

    def stop(signum, frame):  # noqa: ARG001 - signal handler signature
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"sandbox AWS (moto + EKS layer, faults at /_sandbox/faults) listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
