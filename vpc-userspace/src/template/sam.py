"""SAM's transform, AWS::Serverless-2016-10-31, run by aws-sam-translator
(PyPI), the reference implementation CloudFormation runs, offline.

Reads a request on stdin, {"template": T, "parameter_values": {...},
"region": R, "dir": the template's directory}, and writes {"template": T'} or {"errors": [...]} on stdout
(see template/sam.rs, which runs it with the provisioned venv's Python).

No AWS credentials and no network: a boto3 session that only names the
region (the translator reads the partition from it), the managed-policy
map bundled with the translator (no IAM ListPolicies call), and every
pseudo parameter given.

A function's local `CodeUri` (a directory or a file relative to the
template, as `sam deploy` takes it before it uploads anything) cannot go
through the translator, which only knows S3 code: it is replaced by a
placeholder S3 URI before, and the `Code` the translator writes for it is
set back to the local path after, so the model finds the code where the
user keeps it. The placeholder's key carries a digest of the files (as
`sam deploy` names what it uploads by the zip's MD5), so a change of the
code changes what the translator derives from it (AutoPublishAlias's
version). A function with neither `CodeUri` nor `InlineCode` (nor an
image) is the template's directory, as `sam package` packages it.
"""
import hashlib
import json
import os
import sys

# Local paths stand in the translator's input as s3://BUCKET/<index>.
BUCKET = "vpc-local-code"
FUNCTION = "AWS::Serverless::Function"


def is_local(uri):
    return isinstance(uri, str) and not uri.startswith("s3://")


def digest(base, path):
    """MD5 of the files under `path` (relative to `base`), their names too;
    of nothing when it does not exist (the model names it then)."""
    h = hashlib.md5()
    full = os.path.join(base, path)
    if os.path.isfile(full):
        files = [(os.path.basename(full), full)]
    else:
        files = []
        for root, dirs, names in os.walk(full):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(root, n)
                files.append((os.path.relpath(p, full), p))
    for rel, p in files:
        h.update(rel.encode() + b"\0")
        try:
            with open(p, "rb") as f:
                h.update(f.read())
        except OSError:
            pass
    return h.hexdigest()


def stand_in(template, base):
    """Replaces local CodeUri values by placeholders; returns the paths."""
    paths = []

    def placeholder(path):
        paths.append(path)
        return "s3://%s/%d/%s" % (BUCKET, len(paths) - 1, digest(base, path))

    glob = (template.get("Globals") or {}).get("Function") or {}
    if not isinstance(glob, dict):
        glob = {}
    if is_local(glob.get("CodeUri")):
        glob["CodeUri"] = placeholder(glob["CodeUri"])
    resources = template.get("Resources") or {}
    if not isinstance(resources, dict):
        return paths
    for r in resources.values():
        if not isinstance(r, dict) or r.get("Type") != FUNCTION:
            continue
        props = r.get("Properties")
        if props is None:
            props = r["Properties"] = {}
        if not isinstance(props, dict):
            continue
        if "InlineCode" in props or "ImageUri" in props or props.get("PackageType") == "Image":
            continue
        if "CodeUri" in props:
            if is_local(props["CodeUri"]):
                props["CodeUri"] = placeholder(props["CodeUri"])
        elif "CodeUri" not in glob:
            props["CodeUri"] = placeholder(".")
    return paths


def put_back(template, paths):
    """The translator's `Code` for a placeholder is the local path again."""
    for r in (template.get("Resources") or {}).values():
        if not isinstance(r, dict) or r.get("Type") != "AWS::Lambda::Function":
            continue
        props = r.get("Properties") or {}
        code = props.get("Code")
        if isinstance(code, dict) and code.get("S3Bucket") == BUCKET:
            props["Code"] = paths[int(code["S3Key"].split("/")[0])]


def main():
    req = json.load(sys.stdin)
    try:
        import boto3
        from samtranslator import __version__
        from samtranslator.model.exceptions import InvalidDocumentException
        from samtranslator.parser.parser import Parser
        from samtranslator.translator.translator import Translator
    except ImportError as e:
        json.dump({"unavailable": str(e)}, sys.stdout)
        return
    template = req["template"]
    paths = stand_in(template, req["dir"])
    session = boto3.session.Session(region_name=req["region"])
    translator = Translator(None, Parser(), boto_session=session)
    try:
        out = translator.translate(
            template,
            parameter_values=req["parameter_values"],
            get_managed_policy_map=lambda: {},
        )
    except InvalidDocumentException as e:
        errors = []
        for cause in e.causes:
            lid = getattr(cause, "_logical_id", None)
            errors.append({"logical_id": lid if isinstance(lid, str) else None, "message": cause.message})
        json.dump({"message": e.message, "errors": errors, "version": __version__}, sys.stdout)
        return
    except Exception as e:  # the translator's own failures, as CloudFormation reports them
        json.dump({"message": "%s: %s" % (type(e).__name__, e), "errors": [], "version": __version__}, sys.stdout)
        return
    put_back(out, paths)
    json.dump({"template": out, "version": __version__}, sys.stdout)


main()
