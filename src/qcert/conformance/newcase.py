"""`qcert new-case`: scaffold a red case plus the expectation entry that keeps the suite green until
the engine is fixed (DESIGN.md: write the case, run it red, fix, delete the entry)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from qcert.conformance.case import known_features, validate_id

MODULE_HEADER = '''"""Cases for {area}."""

from qcert.conformance.case import case
'''

CASE_TEMPLATE = '''

@case({id}, {statement}, refs={refs}, features={features})
def test_{func}(engine):
    # Act through `engine` (conformance/contract.py) only; assert the behaviour the statement names.
    raise AssertionError("case {raw_id} is not written yet")
'''

EXPECT_TEMPLATE = '''
[[expect]]
id = {id}
outcome = "fail"
reason = "new case: fix pending"
'''


class NewCaseError(ValueError):
    pass


def cases_folder() -> Path:
    from qcert.conformance import cases

    return Path(list(cases.__path__)[0])


def expectations_file() -> Path:
    return Path(__file__).parent / "expectations" / "builtin.toml"


def existing_ids(folder: Path) -> set[str]:
    from qcert.conformance import plugin, selftest

    rc, items, out = selftest.collect(folder, ["--qcert-no-expectations"])
    if rc not in (0, 5):
        raise NewCaseError(f"cannot collect the existing cases in {folder} (fix them first)")
    return {plugin.case_props(i)["case"] for i in items}


def _declared_in_source(folder: Path, case_id: str) -> bool:
    # Collection in this process may reuse an already-imported module; the source is never stale.
    pattern = re.compile(r"@case\(\s*[\"']" + re.escape(case_id) + r"[\"']")
    return any(pattern.search(p.read_text(encoding="utf-8")) for p in folder.glob("test_*.py"))


def scaffold(case_id: str, *, statement: str | None = None, features: list[str] = (), refs: list[str] = (),
             folder: Path | None = None, expectations: Path | None = None) -> Path:
    """Append the case to test_<area>.py (created if needed) and an expected-fail entry."""
    folder = folder or cases_folder()
    expectations = expectations or expectations_file()
    try:
        validate_id(case_id)
    except ValueError as e:
        raise NewCaseError(str(e)) from None
    unknown = [f for f in features if f not in known_features()]
    if unknown:
        raise NewCaseError(f"unknown feature(s) {', '.join(unknown)}; add them to conformance/features.toml first")
    statement = statement or f"TODO: one line stating the behaviour {case_id} checks"
    if "\n" in statement:
        raise NewCaseError("--statement must be one line")
    if case_id in existing_ids(folder) or _declared_in_source(folder, case_id):
        raise NewCaseError(f"case {case_id} already exists")
    area, _, name = case_id.partition("/")
    module = folder / f"test_{area.replace('-', '_').replace('.', '_')}.py"
    func = name.replace("/", "_").replace("-", "_").replace(".", "_")
    text = module.read_text(encoding="utf-8") if module.exists() else MODULE_HEADER.format(area=area)
    if "from qcert.conformance.case import case" not in text:
        text = "from qcert.conformance.case import case\n" + text
    if f"def test_{func}(" in text:
        raise NewCaseError(f"{module.name} already defines test_{func}")
    text = text.rstrip("\n") + "\n" + CASE_TEMPLATE.format(
        id=json.dumps(case_id), raw_id=case_id, statement=json.dumps(statement), refs=list(refs),
        features=list(features), func=func)
    module.write_text(text, encoding="utf-8")
    with open(expectations, "a", encoding="utf-8") as f:
        f.write(EXPECT_TEMPLATE.format(id=json.dumps(case_id)))
    return module
