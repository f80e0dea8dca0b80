"""Python's own gRPC reflection client (grpcio-reflection, which speaks
grpc.reflection.v1alpha only) and the standard health service against Skald.

Lists the services through reflection, resolves skald.v1.LogService's
descriptors from the server alone (no generated code) and calls its
HealthCheck with a message built from them; then the standard
grpc.health.v1 check for the server and for skald.v1.LogService.

Usage: SKALD_GRPC=127.0.0.1:9095 grpc_reflection_test.py
"""

import os
import sys

import grpc
from google.protobuf import descriptor_pool
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lokiq  # noqa: E402

CheckFailed = lokiq.CheckFailed


def main():
    target = os.environ.get("SKALD_GRPC")
    if not target:
        raise CheckFailed("SKALD_GRPC is not set")
    with grpc.insecure_channel(target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)

        reflection_db = ProtoReflectionDescriptorDatabase(channel)
        services = set(reflection_db.get_services())
        for want in ("skald.v1.LogService", "grpc.health.v1.Health"):
            if want not in services:
                raise CheckFailed(f"reflection lists {sorted(services)}, not {want}")
        print(f"  reflection v1alpha lists {sorted(services)}")

        # Everything needed to call a method comes from the server.
        pool = descriptor_pool.DescriptorPool(reflection_db)
        service = pool.FindServiceByName("skald.v1.LogService")
        method = service.methods_by_name.get("HealthCheck")
        if method is None:
            raise CheckFailed(f"skald.v1.LogService has no HealthCheck: {[m.name for m in service.methods]}")
        request_cls = message_factory.GetMessageClass(method.input_type)
        response_cls = message_factory.GetMessageClass(method.output_type)
        call = channel.unary_unary(
            f"/{service.full_name}/{method.name}",
            request_serializer=request_cls.SerializeToString,
            response_deserializer=response_cls.FromString,
        )
        answer = call(request_cls(), timeout=10)
        status = answer.DESCRIPTOR.fields_by_name["status"]
        status_name = status.enum_type.values_by_number[answer.status].name
        if status_name != "SERVING_STATUS_SERVING":
            raise CheckFailed(f"skald.v1.LogService/HealthCheck answered {answer}")
        print(f"  skald.v1.LogService/HealthCheck through reflected descriptors: {status_name}")

        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", "skald.v1.LogService"):
            r = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=10)
            if r.status != health_pb2.HealthCheckResponse.SERVING:
                raise CheckFailed(f"grpc.health.v1 Check({name!r}) -> {r}")
        try:
            health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
            raise CheckFailed("grpc.health.v1 Check of an unknown service did not fail")
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.NOT_FOUND:
                raise CheckFailed(f"unknown service: {e.code()} instead of NOT_FOUND") from None
        print("  grpc.health.v1: SERVING for the server and skald.v1.LogService, NOT_FOUND otherwise")


if __name__ == "__main__":
    lokiq.main_wrapper(main)
