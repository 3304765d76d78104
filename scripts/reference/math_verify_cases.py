"""Turns math-verify's own pytest cases into labelled JSONL fixtures for questa's grader.

Reads the `@pytest.mark.parametrize` tables of a Math-Verify checkout's tests (data only: the
gold, the prediction, the label, and the call around them as provenance) and writes one JSON
object per case. Run by hand against a pinned commit; the output is checked in under
test/fixtures/verifier-cases/math-verify/ with a SOURCE.md (Apache-2.0, Hugging Face).

    python scripts/reference/math_verify_cases.py CHECKOUT COMMIT OUT.jsonl
"""

from __future__ import annotations

import ast
import json
import math
import sys
from pathlib import Path
from typing import Any

# test files whose tables are (gold, pred, label[, options]); the others test configs or timeouts
CASE_FILES = (
    "tests/test_all.py",
    "tests/test_boxed.py",
    "tests/test_numina_cases.py",
    "tests/test_open_thoughts.py",
    "tests/test_strict.py",
    "tests/test_yujianll.py",
)
LABEL_NAMES = ("expected", "result")


def literal(node: ast.expr) -> Any:  # noqa: ANN401 - a JSON-able literal of any type
    """A literal value; f-strings (one case formats math.sqrt(17)) are evaluated with math alone."""
    try:
        return ast.literal_eval(node)
    except ValueError:
        if not isinstance(node, ast.JoinedStr):
            raise
        code = compile(ast.Expression(node), "<case>", "eval")
        return eval(code, {"__builtins__": {}, "math": math})


def grader_call(func: ast.FunctionDef) -> str:
    """The upstream call that grades the case, as source text (the per-test options live there)."""
    for node in ast.walk(func):
        if isinstance(node, ast.Assert):
            return ast.unparse(node.test)
    return ""


def parametrize_tables(func: ast.FunctionDef) -> list[tuple[list[str], ast.List]]:
    tables = []
    for deco in func.decorator_list:
        if not (isinstance(deco, ast.Call) and ast.unparse(deco.func) == "pytest.mark.parametrize"):
            continue
        names_node, values_node = deco.args[0], deco.args[1]
        names = [n.strip() for n in ast.literal_eval(names_node).split(",")]
        if isinstance(values_node, ast.List):
            tables.append((names, values_node))
    return tables


def cases_of(checkout: Path, commit: str, path: str) -> list[dict[str, Any]]:
    tree = ast.parse((checkout / path).read_text(encoding="utf-8"))
    out: list[dict[str, Any]] = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        call = grader_call(func)
        for names, table in parametrize_tables(func):
            label_name = next((n for n in names if n in LABEL_NAMES), None)
            if "gold" not in names or "pred" not in names or label_name is None:
                continue
            for row in table.elts:
                if not isinstance(row, ast.Tuple):
                    continue
                values = dict(zip(names, (literal(v) for v in row.elts), strict=True))
                options = {k: v for k, v in values.items() if k not in ("gold", "pred", label_name)}
                out.append(
                    {
                        "gold": values["gold"],
                        "pred": values["pred"],
                        "expected": bool(values[label_name]),
                        "kind": "math_verify",
                        "config": {"call": call, **({"options": options} if options else {})},
                        "source": {
                            "repo": "huggingface/Math-Verify",
                            "commit": commit,
                            "path": path,
                            "line": row.lineno,
                            "test": func.name,
                        },
                    }
                )
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    checkout, commit, target = Path(argv[1]), argv[2], Path(argv[3])
    rows: list[dict[str, Any]] = []
    for path in CASE_FILES:
        rows.extend(cases_of(checkout, commit, path))
    with target.open("w", encoding="utf-8") as f:
        for i, row in enumerate(rows):
            f.write(json.dumps({"id": f"mv-{i + 1:03d}", **row}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} cases -> {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
