"""JSON lines with questa: requests read from stdin (validated against the JSON Schema that
`npm run generate` writes from functions/contracts/torch-learner-protocol.ts), replies written to the
process's original stdout. Everything else a library prints goes to stderr, the log."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import IO, Any

from jsonschema import Draft202012Validator

Message = dict[str, Any]


class InputProblem(Exception):
    """A request that is refused before anything changed: questa gets `failed` with kind input."""


def take_stdout() -> IO[str]:
    """The protocol's stream: the original stdout. File descriptor 1 then points at stderr, so a
    stray print (ours or a library's) lands in the log instead of corrupting the protocol."""
    protocol = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return protocol


class Channel:
    """The pipe pair of a node's local rank 0."""

    def __init__(self, schemas: Path, out: IO[str], inp: IO[str]) -> None:
        schema = json.loads((schemas / "torch-learner.request.json").read_text(encoding="utf-8"))
        Draft202012Validator.check_schema(schema)
        self._validator = Draft202012Validator(schema)
        self._out = out
        self._in = inp

    def send(self, message: Message) -> None:
        self._out.write(json.dumps(message, separators=(",", ":"), allow_nan=False) + "\n")
        self._out.flush()

    def read(self) -> Message | None:
        """The next valid request; None at the end of input (questa is gone). An invalid line is
        answered with `failed` (id 0 when unreadable) and skipped."""
        while True:
            line = self._in.readline()
            if line == "":
                return None
            if line.strip() == "":
                continue
            try:
                message = json.loads(line)
            except json.JSONDecodeError as error:
                self.send({"type": "failed", "id": 0, "kind": "input", "message": f"not JSON: {error}"})
                continue
            problems = sorted(self._validator.iter_errors(message), key=lambda e: list(e.absolute_path))
            if problems:
                where = lambda e: "/".join(str(p) for p in e.absolute_path) or "(root)"  # noqa: E731
                text = "; ".join(f"{where(e)}: {e.message}" for e in problems[:5])
                request_id = message.get("id") if isinstance(message, dict) else None
                self.send(
                    {
                        "type": "failed",
                        "id": request_id if isinstance(request_id, int) and request_id > 0 else 0,
                        "kind": "input",
                        "message": f"invalid request: {text}",
                    }
                )
                continue
            return message
