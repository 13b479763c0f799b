"""Call a gitscripts script from a simulator using only Python's standard library.

Usage:  python execute_script_example.py [BASE_URL] [SCRIPT_PATH]
Set GITSCRIPTS_TOKEN to a personal API token (create one under /api/v1/auth/tokens), or
GITSCRIPTS_LOGIN and GITSCRIPTS_PASSWORD to sign in with a password.
"""

import json
import os
import sys
import urllib.error
import urllib.request

BASE_URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
SCRIPT_PATH = sys.argv[2] if len(sys.argv) > 2 else "examples/hello.py"


def call(method, path, body=None, token=None):
    data = json.dumps(body).encode("utf-8") if body is not None else None
    request = urllib.request.Request(BASE_URL + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(request, timeout=330) as response:
            return json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        problem = json.loads(error.read().decode("utf-8") or "{}")
        raise SystemExit(
            "HTTP {} {}: {}".format(error.code, problem.get("error_code"), problem.get("message"))
        ) from None


def get_token():
    token = os.environ.get("GITSCRIPTS_TOKEN")
    if token:
        return token
    login = os.environ.get("GITSCRIPTS_LOGIN")
    password = os.environ.get("GITSCRIPTS_PASSWORD")
    if login and password:
        reply = call("POST", "/api/v1/auth/login", {"login": login, "password": password})
        return reply["access_token"]
    return None


def run_script(script_path, data, token=None, revision=None):
    """Run main(data) of the script at `script_path`; returns main's result dict."""
    path = "/api/v1/scripts/" + urllib.request.quote(script_path)
    if revision:
        path += "?rev=" + urllib.request.quote(revision)
    reply = call("POST", path, {"data": data}, token)
    if not reply["success"]:
        raise RuntimeError("script failed: " + str(reply["error"]))
    return reply["result"]


if __name__ == "__main__":
    result = run_script(SCRIPT_PATH, {"name": "World", "value": 42}, token=get_token())
    print(json.dumps(result, indent=2))
