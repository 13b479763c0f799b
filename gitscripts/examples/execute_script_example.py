"""Call gitscripts from a simulator using only Python's standard library.

Usage:  python execute_script_example.py [BASE_URL] [SCRIPT_PATH] [INPUT_FILE]
Set GITSCRIPTS_TOKEN to a personal API token (create one under /api/v1/auth/tokens), or
GITSCRIPTS_LOGIN and GITSCRIPTS_PASSWORD to sign in with a password.

It uses the gitscripts client, one standard-library file the service serves at
/api/v1/client.py: keep a copy as client.py next to this file, or let this example fetch it.
With INPUT_FILE it shows the file workflow: upload the file, run the script with its `file_key`,
download the file whose key the script returns as `result_key`.
"""

import json
import os
import sys
import types
import urllib.request

BASE_URL = sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8000"
SCRIPT_PATH = sys.argv[2] if len(sys.argv) > 2 else "examples/hello.py"
INPUT_FILE = sys.argv[3] if len(sys.argv) > 3 else None


def load_client(base_url: str) -> types.ModuleType:
    """client.py from next to this file, or else fetched from the service (GET /api/v1/client.py)."""
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.py")
    if os.path.exists(here):
        with open(here, "rb") as handle:
            source = handle.read()
    else:
        with urllib.request.urlopen(base_url + "/api/v1/client.py", timeout=30) as response:
            source = response.read()
    module = types.ModuleType("gitscripts_client")
    exec(compile(source, "client.py", "exec"), module.__dict__)
    return module


def main() -> None:
    gitscripts = load_client(BASE_URL)
    client = gitscripts.Client(
        BASE_URL,
        token=os.environ.get("GITSCRIPTS_TOKEN"),
        login=os.environ.get("GITSCRIPTS_LOGIN"),
        password=os.environ.get("GITSCRIPTS_PASSWORD"),
    )
    data = {"name": "World", "value": 42}
    try:
        if INPUT_FILE:
            # POST /api/v1/files/upload: the key keeps the file's extension.
            data["file_key"] = client.upload(INPUT_FILE, prefix="simulator")
            print("uploaded:", json.dumps(client.info(data["file_key"])))
        # POST /api/v1/scripts/<SCRIPT_PATH> with {"data": data}; rev="<commit>" runs an old version.
        result = client.run(SCRIPT_PATH, data, timeout=300)
        print(json.dumps(result, indent=2))
        if result.get("result_key"):
            # GET /api/v1/files/<key>, streamed into a file.
            target = client.download(result["result_key"], os.path.basename(result["result_key"]))
            print("downloaded:", target)
        if INPUT_FILE:
            client.delete(data["file_key"])  # DELETE /api/v1/files/<key>
    except gitscripts.GitscriptsError as error:
        if error.error_code == "SCRIPT_NOT_FOUND":  # run with no arguments, most likely
            print(__doc__, file=sys.stderr)
        raise SystemExit(f"{error.status} {error.error_code}: {error.message}") from None


if __name__ == "__main__":
    main()
