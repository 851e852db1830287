#!/usr/bin/env python3
"""Strict JSON schemas for kubeconform, made offline from what the cluster itself validates with.

    schemas.py OUT_DIR --openapi openapi-v2.json   the API server's /openapi/v2 (built-in kinds)
    schemas.py OUT_DIR --crd crds/*.yaml            CustomResourceDefinitions (openAPIV3Schema)

Writes OUT_DIR/<group, or the version for the core group>/<kind>_<version>.json, the layout of
kubeconform's -schema-location '{{ .Group }}/{{ .ResourceKind }}_{{ .ResourceAPIVersion }}.json'.
Strict: an object schema with properties and no additionalProperties gets
`additionalProperties: false` (unless it preserves unknown fields); int-or-string and quantities
accept a string or a number; `nullable` allows null. An OpenAPI file keeps its references
(`#/definitions/...`): each schema carries the definitions it reaches (draft 4, kubeconform's).
"""
import json
import os
import sys

import yaml

REF = "#/definitions/"
NUMBER_OR_STRING = {
    "io.k8s.apimachinery.pkg.api.resource.Quantity": [{"type": "string"}, {"type": "number"}],
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": [{"type": "string"}, {"type": "integer"}],
}


def strict(node):
    """A copy of the schema `node` with the strict rules applied at every level."""
    if not isinstance(node, dict):
        return node
    out = {}
    for k, v in node.items():
        if k.startswith("x-kubernetes-"):
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {name: strict(s) for name, s in v.items()}
        elif k in ("allOf", "anyOf", "oneOf") or (k == "items" and isinstance(v, list)):
            out[k] = [strict(s) for s in v]
        elif k in ("items", "additionalProperties", "not"):
            out[k] = strict(v)
        else:
            out[k] = v
    if node.get("x-kubernetes-int-or-string") or node.get("format") == "int-or-string":
        for k in ("type", "format"):
            out.pop(k, None)
        out["oneOf"] = [{"type": "string"}, {"type": "integer"}]
    if out.pop("nullable", False) and "type" in out:
        out["type"] = [out["type"], "null"]
    if (
        "properties" in node
        and "additionalProperties" not in node
        and not node.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def refs(node, found):
    """Adds to `found` the definition names `node` refers to, directly."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(REF):
            found.add(ref[len(REF):])
        for v in node.values():
            refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


def write(out_dir, group, version, kind, schema):
    folder = os.path.join(out_dir, group or version)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, f"{kind.lower()}_{version}.json"), "w") as f:
        json.dump(schema, f)


def from_openapi(out_dir, path):
    with open(path) as f:
        definitions = json.load(f)["definitions"]
    converted = {}
    for name, d in definitions.items():
        if name in NUMBER_OR_STRING:
            converted[name] = {"oneOf": NUMBER_OR_STRING[name]}
        else:
            converted[name] = strict(d)
    count = 0
    for name, d in definitions.items():
        for gvk in d.get("x-kubernetes-group-version-kind", []):
            reached, todo = set(), [name]
            while todo:
                n = todo.pop()
                if n not in reached:
                    reached.add(n)
                    found = set()
                    refs(converted[n], found)
                    todo.extend(found)
            schema = dict(converted[name])
            schema["definitions"] = {n: converted[n] for n in sorted(reached)}
            write(out_dir, gvk["group"], gvk["version"], gvk["kind"], schema)
            count += 1
    return count


def from_crds(out_dir, paths):
    count = 0
    for path in paths:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                spec = crd["spec"]
                for v in spec["versions"]:
                    schema = strict(v["schema"]["openAPIV3Schema"])
                    props = schema.setdefault("properties", {})
                    props.setdefault("apiVersion", {"type": "string"})
                    props.setdefault("kind", {"type": "string"})
                    props.setdefault("metadata", {"type": "object"})
                    write(out_dir, spec["group"], v["name"], spec["names"]["kind"], schema)
                    count += 1
    return count


def main(argv):
    if len(argv) < 3 or argv[1] not in ("--openapi", "--crd"):
        sys.exit(__doc__)
    out_dir, mode, paths = argv[0], argv[1], argv[2:]
    if mode == "--openapi":
        count = from_openapi(out_dir, paths[0])
    else:
        count = from_crds(out_dir, paths)
    source = paths[0] if len(paths) == 1 else f"{len(paths)} files"
    print(f"{count} schemas from {source} in {out_dir}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
