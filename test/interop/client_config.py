"""
Reads a ClientConfig file the way upstream's client reads it, and uses it.

Upstream's model (jumpstarter.config.client.ClientConfigV1Alpha1) is pydantic,
which Debian's Python here lacks, so its field names and types are checked by
hand below, as strictly as pydantic would: a wrong type fails. `drivers.allow`
is decoded as upstream's validator does (a list, or a comma-separated string;
"UNSAFE" in it sets unsafe) and a driver client class is allowed when it
matches a glob with fnmatchcase, as jumpstarter.common.importlib.import_class
decides. Then the config is used as upstream's client uses it: a TLS channel
trusting its base64 CA, the token as access-token call credentials plus the
jumpstarter-kind/-namespace/-name metadata, and ClientService.ListExporters.

usage: client_config.py FILE CLASS_PATH...
Prints one JSON line: {"allowed": {CLASS_PATH: bool}, "exporters": [names]}.
No environment overrides are read (JMP_DRIVERS_ALLOW would win upstream).
"""

import base64
import json
import sys
from fnmatch import fnmatchcase

import grpc
import yaml

sys.dont_write_bytecode = True  # keeps test/interop free of __pycache__

from protos import client_pb2  # noqa: E402


def expect(value, kind, where):
    if not isinstance(value, kind):
        raise SystemExit(f"{where}: expected {kind.__name__}, got {type(value).__name__} {value!r}")
    return value


def load(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    expect(doc, dict, "document")
    known = {"apiVersion", "kind", "metadata", "endpoint", "tls", "token", "refresh_token", "grpcOptions", "drivers", "shell", "leases"}
    unknown = set(doc) - known
    if unknown:
        raise SystemExit(f"unknown keys upstream's model does not have: {sorted(unknown)}")
    if doc.get("apiVersion", "jumpstarter.dev/v1alpha1") != "jumpstarter.dev/v1alpha1":
        raise SystemExit(f"apiVersion: {doc['apiVersion']!r}")
    if doc.get("kind", "ClientConfig") != "ClientConfig":
        raise SystemExit(f"kind: {doc['kind']!r}")
    meta = expect(doc.get("metadata", {}), dict, "metadata")
    expect(meta.get("namespace"), str, "metadata.namespace")
    expect(meta.get("name"), str, "metadata.name")
    expect(doc.get("endpoint"), str, "endpoint")
    expect(doc.get("token"), str, "token")
    tls = expect(doc.get("tls", {}), dict, "tls")
    expect(tls.get("ca", ""), str, "tls.ca")
    expect(tls.get("insecure", False), bool, "tls.insecure")
    grpc_options = doc.get("grpcOptions") or {}
    expect(grpc_options, dict, "grpcOptions")
    drivers = expect(doc.get("drivers", {}), dict, "drivers")
    allow = drivers.get("allow", [])
    if not isinstance(allow, list):
        allow = expect(allow, str, "drivers.allow").split(",")
    for i, glob in enumerate(allow):
        expect(glob, str, f"drivers.allow[{i}]")
    unsafe = expect(drivers.get("unsafe", False), bool, "drivers.unsafe") or "UNSAFE" in allow
    return doc, allow, unsafe


def main():
    path, *class_paths = sys.argv[1:]
    doc, allow, unsafe = load(path)
    allowed = {c: unsafe or any(fnmatchcase(c, g) for g in allow) for c in class_paths}

    ca = doc["tls"].get("ca", "")
    credentials = grpc.ssl_channel_credentials(base64.b64decode(ca) if ca else None)

    def metadata_plugin(context, callback):
        callback([
            ("jumpstarter-kind", "Client"),
            ("jumpstarter-namespace", doc["metadata"]["namespace"]),
            ("jumpstarter-name", doc["metadata"]["name"]),
        ], None)

    credentials = grpc.composite_channel_credentials(credentials, grpc.composite_call_credentials(
        grpc.metadata_call_credentials(metadata_plugin), grpc.access_token_call_credentials(doc["token"]),
    ))
    with grpc.secure_channel(doc["endpoint"], credentials) as channel:
        list_exporters = channel.unary_unary(
            "/jumpstarter.client.v1.ClientService/ListExporters",
            request_serializer=client_pb2.ListExportersRequest.SerializeToString,
            response_deserializer=client_pb2.ListExportersResponse.FromString,
        )
        reply = list_exporters(client_pb2.ListExportersRequest(parent=f"namespaces/{doc['metadata']['namespace']}"), timeout=10)
    print(json.dumps({"allowed": allowed, "exporters": [e.name.split("/")[-1] for e in reply.exporters]}))


if __name__ == "__main__":
    main()
