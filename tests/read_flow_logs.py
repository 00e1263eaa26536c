"""Reads our flow-log files with `flowlogs-reader` (PyPI), the independent
reader the tests check our records against.

usage: read_flow_logs.py S3_ROOT BUCKET[/PREFIX] [CWL_STREAM_FILE LOG_FORMAT]...

S3: the reader's own S3FlowLogsReader walks the bucket as it walks S3
(AWSLogs/<account>/vpcflowlogs/<region>/<yyyy>/<mm>/<dd>/, object names
parsed for their time, gzip, header line); its boto client here serves the
local directory that stands for the bucket. CloudWatch Logs: each line of a
stream file is an event message, parsed with the log format's fields.
Prints {"s3": [...], "cwl": [...], "skipped": N} as JSON.
"""
import io
import json
import os
import sys
from datetime import datetime, timedelta

from flowlogs_reader import FlowRecord, S3FlowLogsReader


class LocalBucket:
    """The three S3 calls S3FlowLogsReader makes, on a directory."""

    def __init__(self, root):
        self.root = root

    def _keys(self, bucket):
        base = os.path.join(self.root, bucket)
        for d, _, files in os.walk(base):
            for f in files:
                if not f.startswith('.'):
                    yield os.path.relpath(os.path.join(d, f), base)

    def list_objects_v2(self, Bucket, Prefix='', Delimiter=None):
        prefixes = set()
        contents = []
        for k in sorted(self._keys(Bucket)):
            if not k.startswith(Prefix):
                continue
            rest = k[len(Prefix):]
            if Delimiter and Delimiter in rest:
                prefixes.add(Prefix + rest.split(Delimiter)[0] + Delimiter)
            else:
                contents.append({'Key': k})
        return {
            'CommonPrefixes': [{'Prefix': p} for p in sorted(prefixes)],
            'Contents': contents,
        }

    def get_paginator(self, name):
        assert name == 'list_objects_v2'
        client = self

        class Paginator:
            def paginate(self, Bucket, Prefix=''):
                yield client.list_objects_v2(Bucket=Bucket, Prefix=Prefix)

        return Paginator()

    def get_object(self, Bucket, Key):
        data = open(os.path.join(self.root, Bucket, Key), 'rb').read()
        return {'Body': io.BytesIO(data), 'ContentLength': len(data)}


def plain(r):
    d = r.to_dict()
    for k in ('start', 'end'):
        if k in d:
            d[k] = int((d[k] - datetime(1970, 1, 1)).total_seconds())
    return d


def main():
    root, bucket = sys.argv[1], sys.argv[2]
    now = datetime.utcnow()
    reader = S3FlowLogsReader(
        bucket,
        start_time=now - timedelta(hours=2),
        end_time=now + timedelta(hours=2),
        boto_client=LocalBucket(root),
        raise_on_error=True,
    )
    s3 = [plain(r) for r in reader]
    cwl = []
    args = sys.argv[3:]
    for path, fmt in zip(args[0::2], args[1::2]):
        fields = tuple(f.strip('${}').replace('-', '_') for f in fmt.split())
        for line in open(path):
            cwl.append(plain(FlowRecord.from_cwl_event({'message': line}, fields)))
    json.dump({'s3': s3, 'cwl': cwl, 'skipped': reader.skipped_records}, sys.stdout)


main()
