"""Schemathesis hooks for the fuzzing run: webhooks are signed the way the OA signs them.

Loaded by the schemathesis command through SCHEMATHESIS_HOOKS; the secret comes from
FINOA_OA_WEBHOOK_SECRET. Without a signature every webhook would stop at the 401 and the
body parsing behind it would never be fuzzed.
"""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import schemathesis
from schemathesis.core import NOT_SET

from finoa.security.signatures import signed_headers

WEBHOOK_PATH = "/api/v1/webhooks/generic-oa"


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.path != WEBHOOK_PATH or case.method.upper() != "POST":
        return
    if case.body is NOT_SET:
        body = b""  # a request without a body
    else:
        body = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
        case.body = body  # sent as these very bytes, which the signature covers
    secret = os.environ["FINOA_OA_WEBHOOK_SECRET"]
    headers = signed_headers(secret, f"fuzz-{uuid.uuid4().hex}", body)
    case.headers = {**(case.headers or {}), **headers}
