"""SARIF 2.1.0: the report as static-analysis results, for code-scanning annotations.

One rule per check; one result per check with ``kind`` fail (level error), pass, review
(inconclusive) or informational. Results point at the audited checkpoint and the forget
list, and carry a stable fingerprint (check, model sha256, forget-set fingerprint) so a
code-scanning service tracks the same finding across runs.
"""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import quote

from audit_cli.report import AuditReport
from audit_cli.version import __version__

SARIF_SCHEMA = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
KIND = {"fail": "fail", "pass": "pass", "inconclusive": "review", "info": "informational", "skipped": "notApplicable"}


def rule_id(check: str) -> str:
    return "UA/" + re.sub(r"[^a-z0-9]+", "-", check.lower()).strip("-")


def artifact_uri(path: str) -> str:
    """A file path as the URI reference SARIF wants: separators kept, everything else a
    URI cannot hold (spaces, <, %, # read as a fragment...) percent-encoded."""
    return quote(path.replace("\\", "/"), safe="/:")


def render_sarif(report: AuditReport) -> str:
    # An object audited from Python ("<in-memory model>") has no file to point at.
    files = [p for p in (report.model.path, report.forget.path) if p and not p.startswith("<")]
    locations = [{"physicalLocation": {"artifactLocation": {"uri": artifact_uri(p)}}} for p in files]
    rules, results = [], []
    for c in report.checks:
        rid = rule_id(c.name)
        rules.append(
            {
                "id": rid,
                "name": re.sub(r"[^A-Za-z0-9]+", "", c.name.title()),
                "shortDescription": {"text": c.name},
                "defaultConfiguration": {"level": "error" if c.gated else "note"},
            }
        )
        kind = KIND[c.verdict]
        key = f"{c.name}|{report.model.sha256}|{report.forget.fingerprint}"
        results.append(
            {
                "ruleId": rid,
                "kind": kind,
                "level": "error" if kind == "fail" else "none",
                "message": {"text": c.sentence},
                "locations": locations,
                "partialFingerprints": {"unlearningAuditCheck/v1": hashlib.sha256(key.encode()).hexdigest()},
                "properties": {"score": c.score, "low": c.low, "high": c.high, "threshold": c.threshold},
            }
        )
    sarif = {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "unlearning-audit", "version": __version__, "rules": rules}},
                "invocations": [{"executionSuccessful": True, "exitCode": int(report.exit_code)}],
                "results": results,
            }
        ],
    }
    return json.dumps(sarif, indent=2, sort_keys=True) + "\n"
