#!/usr/bin/env python3
"""Builds public-attacks.jsonl from the public 4688 events (see README.md here).

    python3 datasets/attacks/convert.py ../shared/data/events > datasets/attacks/public-attacks.jsonl

Keeps the events `procforest` labels as attacks when it reads the original files
(datasets/src/sample_import.rs): msticpy's `MSTICAlertsWin1\\MSTICAdmin` events, and in the
OTRF archives the user accounts' events (not `NT AUTHORITY\\...`, not `-\\-`), labelled
with the archive's dataset id. Writes SecurityEvent columns and the label as `attack`.
"""
import csv
import json
import sys
from datetime import datetime, timezone
from pathlib import Path


def iso(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def msticpy(path: Path):
    with path.open(newline="") as f:
        for row in csv.DictReader(f):
            if row["Account"] != "MSTICAlertsWin1\\MSTICAdmin":
                continue
            t = datetime.strptime(row["TimeGenerated"], "%Y-%m-%d %H:%M:%S.%f").replace(
                tzinfo=timezone.utc
            )
            yield {
                "TimeGenerated": iso(t),
                "Computer": row["Computer"],
                "Account": row["Account"],
                "AccountType": "Machine" if row["SubjectUserName"].endswith("$") else "User",
                "NewProcessName": row["NewProcessName"],
                "ParentProcessName": row["ParentProcessName"],
                "CommandLine": row["CommandLine"],
                "SubjectLogonId": row["SubjectLogonId"],
                "TokenElevationType": row["TokenElevationType"],
                "attack": "msticpy_alert_simulation",
                "source": "msticpy/processes_on_host.csv",
            }


def otrf(path: Path):
    for line in path.open():
        if not line.strip():
            continue
        e = json.loads(line)
        domain, user = e.get("SubjectDomainName"), e.get("SubjectUserName")
        if not (domain and user) or user.endswith("$"):
            continue
        account = f"{domain}\\{user}"
        if account.startswith("NT AUTHORITY\\") or account == "-\\-" or not e.get("dataset_id"):
            continue
        stamp = e.get("@timestamp") or e.get("TimeCreated") or e.get("TimeGenerated")
        try:
            t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            t = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        yield {
            "TimeGenerated": iso(t),
            "Computer": e.get("Hostname"),
            "Account": account,
            "AccountType": "User",
            "NewProcessName": e.get("NewProcessName"),
            "ParentProcessName": e.get("ParentProcessName"),
            "CommandLine": e.get("CommandLine"),
            "SubjectLogonId": e.get("SubjectLogonId"),
            "TokenElevationType": e.get("TokenElevationType"),
            "attack": f"otrf:{e['dataset_id']}",
            "source": e.get("dataset_file"),
        }


def main() -> None:
    root = Path(sys.argv[1])
    rows = list(msticpy(root / "msticpy/processes_on_host.csv"))
    rows += otrf(root / "otrf-security-datasets/derived/otrf_security_4688.jsonl")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
