"""`aiworker-health-probe --addr host:port [--service NAME]`: exit 0 when the
grpc.health.v1 status is SERVING, 1 otherwise (for Docker HEALTHCHECK and
anything else without a native gRPC probe)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="aiworker-health-probe")
    parser.add_argument("--addr", required=True, help="host:port of the gRPC server")
    parser.add_argument("--service", default="", help='service name; "" = the process')
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds")
    args = parser.parse_args(argv)
    try:
        with grpc.insecure_channel(args.addr) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
            )
    except grpc.RpcError as exc:
        print(f"{args.addr} {args.service or '(process)'}: {exc.code().name}: {exc.details()}", file=sys.stderr)
        sys.exit(1)
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    print(f"{args.addr} {args.service or '(process)'}: {status}")
    sys.exit(0 if status == "SERVING" else 1)


if __name__ == "__main__":
    main()
