"""Writes the Milvus protocol as a FileDescriptorSet for protoc, cut down to the calls Loupe makes.

Milvus publishes its protocol as .proto files in milvus-io/milvus-proto; the pymilvus wheel carries the
same definitions compiled into descriptors (pymilvus/grpc_gen/*_pb2.py), and that is where they are read
from here, at the pymilvus version scripts/generate-milvus-grpc.sh pins. The service keeps only the
methods Loupe calls, and each file only the messages and enums those reach, so the generated Swift is a
few thousand lines instead of a hundred thousand.

Usage: python milvus_descriptors.py OUTPUT.pb
"""
import sys

from google.protobuf import descriptor_pb2
from pymilvus.grpc_gen import milvus_pb2

# The MilvusService methods the Milvus store calls.
METHODS = [
    "CreateCollection", "DropCollection", "DescribeCollection", "ShowCollections", "LoadCollection",
    "CreateIndex", "Upsert", "Delete", "Query", "Search", "ListDatabases", "CreateDatabase",
]
# Messages those calls carry serialized inside bytes fields.
EMBEDDED_MESSAGES = [".milvus.proto.schema.CollectionSchema", ".milvus.proto.common.PlaceholderGroup"]


def file_protos(root):
    """Every file the root depends on, as FileDescriptorProtos, dependencies first."""
    seen, ordered = set(), []

    def visit(descriptor):
        if descriptor.name in seen:
            return
        seen.add(descriptor.name)
        for dependency in descriptor.dependencies:
            visit(dependency)
        proto = descriptor_pb2.FileDescriptorProto()
        descriptor.CopyToProto(proto)
        ordered.append(proto)

    visit(root)
    return ordered


def top_level(type_name, packages):
    """'.milvus.proto.common.Foo.Bar' -> ('common.proto', 'Foo'): the top-level type that holds it."""
    name = type_name.lstrip(".")
    for file_name, package in packages.items():
        if package and name.startswith(package + "."):
            rest = name[len(package) + 1:]
            if rest.split(".")[0] in top_names[file_name]:
                return file_name, rest.split(".")[0]
    raise KeyError(type_name)


def referenced_types(message):
    """The type names a message's fields (and its nested messages' fields) use."""
    names = [field.type_name for field in message.field if field.type_name]
    for nested in message.nested_type:
        names += referenced_types(nested)
    return names


files = file_protos(milvus_pb2.DESCRIPTOR)
by_name = {proto.name: proto for proto in files}
packages = {proto.name: proto.package for proto in files}
top_names = {proto.name: {m.name for m in proto.message_type} | {e.name for e in proto.enum_type} for proto in files}

service_file = by_name["milvus.proto"]
service = next(s for s in service_file.service if s.name == "MilvusService")
kept_methods = [m for m in service.method if m.name in METHODS]
missing = set(METHODS) - {m.name for m in kept_methods}
if missing:
    sys.exit(f"MilvusService has no {sorted(missing)}")

# Walk from the methods' requests and responses to every type they reach.
keep = set()
queue = [top_level(name, packages) for m in kept_methods for name in (m.input_type, m.output_type)]
queue += [top_level(name, packages) for name in EMBEDDED_MESSAGES]
while queue:
    file_name, name = queue.pop()
    if (file_name, name) in keep:
        continue
    keep.add((file_name, name))
    message = next((m for m in by_name[file_name].message_type if m.name == name), None)
    if message is not None:
        queue += [top_level(t, packages) for t in referenced_types(message)]

output = descriptor_pb2.FileDescriptorSet()
kept_files = set()
for proto in files:
    if not any(f == proto.name for f, _ in keep):
        continue
    cut = descriptor_pb2.FileDescriptorProto()
    cut.CopyFrom(proto)
    del cut.message_type[:]
    cut.message_type.extend(m for m in proto.message_type if (proto.name, m.name) in keep)
    del cut.enum_type[:]
    cut.enum_type.extend(e for e in proto.enum_type if (proto.name, e.name) in keep)
    del cut.service[:]
    del cut.extension[:]  # Milvus's own message options: nothing Loupe reads
    if proto.name == "milvus.proto":
        kept_service = cut.service.add()
        kept_service.CopyFrom(service)
        del kept_service.method[:]
        kept_service.method.extend(kept_methods)
    used = {f for f, _ in keep}
    dependencies = [d for d in proto.dependency if d in used]
    del cut.dependency[:]
    cut.dependency.extend(dependencies)
    del cut.public_dependency[:]
    del cut.weak_dependency[:]
    cut.ClearField("source_code_info")
    output.file.append(cut)
    kept_files.add(proto.name)

with open(sys.argv[1], "wb") as out:
    out.write(output.SerializeToString())
print(" ".join(f.name for f in output.file))
