"""Drives the agent's Lambda API with boto3, as a user's own code would.

Usage: lambda_sdk.py ENDPOINT_URL. Exits non-zero (an AssertionError) on the
first state or error that is not what AWS documents.
"""
import json
import os
import sys
import urllib.request

import boto3
import botocore
from botocore.config import Config

url = sys.argv[1]
c = boto3.client(
    "lambda",
    endpoint_url=url,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    # One attempt per call: a 502 is retried by default, and the retry
    # would meet the state the first attempt moved the function to.
    config=Config(retries={"total_max_attempts": 1}),
)


def advance(ms):
    """Moves the deployment's test clock (ours, not AWS's)."""
    req = urllib.request.Request(
        url + "/_vpc/clock", data=json.dumps({"AdvanceMs": ms}).encode(), method="POST"
    )
    urllib.request.urlopen(req).read()


def error(f, **kw):
    try:
        f(**kw)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"]
    raise AssertionError(f"{f.__name__}({kw}) did not fail")


# One endpoint for every AWS API (AWS_ENDPOINT_URL as a user would set it):
# a request goes where its signature's service says. A service not served
# yet answers AWS's error in its own protocol at once: not a hang (a short
# read timeout), not a 500 (one attempt, no retries).
os.environ["AWS_ENDPOINT_URL"] = url
quick = Config(retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=5)


def unserved(service, call, **kw):
    client = boto3.client(
        service, region_name="us-east-1", aws_access_key_id="test",
        aws_secret_access_key="test", config=quick)
    try:
        getattr(client, call)(**kw)
    except botocore.exceptions.ClientError as e:
        return (e.response["Error"]["Code"], e.response["Error"]["Message"],
                e.response["ResponseMetadata"]["HTTPStatusCode"])
    raise AssertionError(f"{service}.{call} did not fail")


code, msg, status = unserved("ec2", "describe_vpcs")
assert (code, status) == ("InvalidAction", 400), (code, msg, status)
assert "service ec2 is not served" in msg and "DescribeVpcs" in msg, msg
code, msg, status = unserved("cloudformation", "list_stacks")
assert (code, status) == ("InvalidAction", 400), (code, msg, status)
assert "service cloudformation is not served" in msg, msg
code, msg, status = unserved("dynamodb", "list_tables")
assert (code, status) == ("UnknownOperationException", 400), (code, msg, status)
assert "service dynamodb is not served" in msg and "ListTables" in msg, msg
# The same endpoint, signed for lambda, is the Lambda API.
assert "Functions" in boto3.client(
    "lambda", region_name="us-east-1", aws_access_key_id="test",
    aws_secret_access_key="test", config=quick).list_functions()
del os.environ["AWS_ENDPOINT_URL"]

cfg = c.get_function(FunctionName="reports")["Configuration"]
assert (cfg["State"], cfg["StateReasonCode"], cfg["LastUpdateStatus"]) == (
    "Pending", "Creating", "InProgress"), cfg
assert cfg["VpcConfig"] == {
    "SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"], "VpcId": "Vpc",
    "Ipv6AllowedForDualStack": False}, cfg["VpcConfig"]
assert error(c.invoke, FunctionName="reports", Payload=b"{}") == ("ResourceNotReadyException", 502)
assert error(c.publish_version, FunctionName="reports") == ("ResourceConflictException", 409)

advance(5 * 60 * 1000)
c.get_waiter("function_active_v2").wait(
    FunctionName="reports", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
r = c.invoke(FunctionName="reports", Payload=b'"hi"')
assert r["StatusCode"] == 200 and "FunctionError" not in r, r
assert r["Payload"].read().strip() == b'reports got "hi"'

names = [f["FunctionName"] for f in c.list_functions()["Functions"]]
assert names == ["reports"], names

# VpcConfig validation, as Lambda answers it.
bad = [
    {"SubnetIds": [f"subnet-{i}" for i in range(17)], "SecurityGroupIds": ["FnSg"]},
    {"SubnetIds": ["A"], "SecurityGroupIds": [f"sg-{i}" for i in range(6)]},
    {"SubnetIds": [], "SecurityGroupIds": ["FnSg"]},
    {"SubnetIds": ["A", "Elsewhere"], "SecurityGroupIds": ["FnSg"]},
    {"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"], "Ipv6AllowedForDualStack": True},
    {"SubnetIds": ["subnet-nope"], "SecurityGroupIds": ["FnSg"]},
]
for vc in bad:
    got = error(c.update_function_configuration, FunctionName="reports", VpcConfig=vc)
    assert got == ("InvalidParameterValueException", 400), (vc, got)

# An update to a combination with no ENI: InProgress until it is created.
u = c.update_function_configuration(
    FunctionName="reports", VpcConfig={"SubnetIds": ["B"], "SecurityGroupIds": ["FnSg"]})
assert (u["State"], u["LastUpdateStatus"]) == ("Active", "InProgress"), u
assert error(c.update_function_configuration, FunctionName="reports",
             VpcConfig={"SubnetIds": ["A"], "SecurityGroupIds": ["FnSg"]}) == (
    "ResourceConflictException", 409)
advance(5 * 60 * 1000)
c.get_waiter("function_updated_v2").wait(
    FunctionName="reports", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
cfg = c.get_function_configuration(FunctionName="reports")
assert cfg["VpcConfig"]["SubnetIds"] == ["B"], cfg

# Idle for the idle period: Inactive; the next invocation fails and restores.
advance(14 * 86400 * 1000)
cfg = c.get_function(FunctionName="reports")["Configuration"]
assert (cfg["State"], cfg["StateReasonCode"]) == ("Inactive", "Idle"), cfg
# Its ENI, unused for the delete delay, goes: the restore waits for a new
# one on the test clock (with the ENI still there it would be Active at the
# agent's next tick, before we could look).
advance(20 * 60 * 1000)
assert error(c.invoke, FunctionName="reports", Payload=b"{}") == ("ResourceNotReadyException", 502)
cfg = c.get_function(FunctionName="reports")["Configuration"]
assert (cfg["State"], cfg["StateReasonCode"]) == ("Pending", "Restoring"), cfg
advance(5 * 60 * 1000)
c.get_waiter("function_active_v2").wait(
    FunctionName="reports", WaiterConfig={"Delay": 1, "MaxAttempts": 30})

v = c.publish_version(FunctionName="reports")
assert v["Version"] == "1", v
assert c.get_function(FunctionName="reports", Qualifier="1")["Configuration"]["Version"] == "1"
# The version runs in its own execution environment.
r = c.invoke(FunctionName="reports", Qualifier="1", Payload=b'"v"')
assert r["Payload"].read().strip() == b'reports got "v"', r
assert r["ExecutedVersion"] == "1", r

c.delete_function(FunctionName="reports")
assert error(c.get_function, FunctionName="reports") == ("ResourceNotFoundException", 404)

# CreateFunction: a new execution environment on the running deployment.
made = c.create_function(
    FunctionName="maker", Runtime="provided.al2023", Role="arn:aws:iam::123456789012:role/x",
    Handler="bootstrap", Code={"ZipFile": b"tr a-z A-Z"},
    VpcConfig={"SubnetIds": ["B"], "SecurityGroupIds": ["FnSg"]})
assert made["State"] in ("Pending", "Active"), made
c.get_waiter("function_active_v2").wait(
    FunctionName="maker", WaiterConfig={"Delay": 1, "MaxAttempts": 30})
r = c.invoke(FunctionName="maker", Payload=b'"abc"')
assert r["Payload"].read() == b'"ABC"', r
assert error(c.create_function, FunctionName="maker", Runtime="provided.al2023",
             Role="arn:aws:iam::123456789012:role/x", Handler="bootstrap",
             Code={"ZipFile": b"cat"}) == ("ResourceConflictException", 409)
# Another account (its access key id is its account id here): subnet B is
# not shared with it.
other = boto3.client(
    "lambda", endpoint_url=url, region_name="us-east-1",
    aws_access_key_id="210987654321", aws_secret_access_key="test",
    config=Config(retries={"total_max_attempts": 1}))
assert error(other.create_function, FunctionName="theirs", Runtime="provided.al2023",
             Role="arn:aws:iam::210987654321:role/x", Handler="bootstrap",
             Code={"ZipFile": b"cat"},
             VpcConfig={"SubnetIds": ["B"], "SecurityGroupIds": ["FnSg"]}) == (
    "InvalidParameterValueException", 400)
c.delete_function(FunctionName="maker")
print("sdk: ok")
