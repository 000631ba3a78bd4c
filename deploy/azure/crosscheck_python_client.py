#!/usr/bin/env python3
"""Cross-check of the loopback Azure Monitor stand-in used by procforest's tests: the
official Python client (PyPI azure-monitor-ingestion) uploads records to it.

    python3 deploy/azure/crosscheck_python_client.py AUTHORITY ENDPOINT TENANT CLIENT_ID \
        CLIENT_SECRET DCR STREAM RECORDS.jsonl

Gets a token from AUTHORITY's /{tenant}/oauth2/v2.0/token (client credentials), then
uploads the records (JSON lines, e.g. a procforest dead-letter file) with
LogsIngestionClient.upload. Exits 0 when the client reports success.
"""
import json
import sys
import time
import urllib.parse
import urllib.request

from azure.core.credentials import AccessToken
from azure.monitor.ingestion import LogsIngestionClient


class ClientSecretOverHttp:
    """A minimal TokenCredential for an http:// loopback authority (tests only)."""

    def __init__(self, authority, tenant, client_id, secret):
        self.url = f"{authority.rstrip('/')}/{tenant}/oauth2/v2.0/token"
        self.client_id = client_id
        self.secret = secret

    def get_token(self, *scopes, **kwargs):
        body = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self.secret,
            "scope": " ".join(scopes),
        }).encode()
        with urllib.request.urlopen(self.url, data=body, timeout=30) as r:
            doc = json.load(r)
        return AccessToken(doc["access_token"], int(time.time()) + int(doc["expires_in"]))


def main():
    authority, endpoint, tenant, client_id, secret, dcr, stream, path = sys.argv[1:9]
    records = [json.loads(line) for line in open(path) if line.strip()]
    client = LogsIngestionClient(endpoint=endpoint, credential=ClientSecretOverHttp(authority, tenant, client_id, secret))
    # enforce_https=False: the stand-in is plain http on loopback.
    client.upload(rule_id=dcr, stream_name=stream, logs=records, enforce_https=False)
    print(f"uploaded {len(records)} records")


if __name__ == "__main__":
    main()
