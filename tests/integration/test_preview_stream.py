"""``python -m mediator preview`` writes each value set as it is computed
(``mediator/preview.py``): against a live CouchDB, what it prints is the list the
command printed when it computed everything first and ``json.dump``-ed it, for several
data sets over several months (value sets then come month by month, and are put back
in the jobs' order); a CHT read failing half-way is one error line and no whole list."""

from __future__ import annotations

import io
import json
from datetime import date

import pytest

from mediator.cli.commands import main
from mediator.run import read as cht_read
from mediator.run.pipeline import compute
from mediator.run.request import CLI_NAMES, RunRequest
from mediator.settings.config import RuntimeConfig
from tests.cht_fixtures import MULTI, contact, seed, target_doc, use_db

MONTHS = ("2000-01", "2000-02", "2000-03")


def targets(de1: int, both: int) -> list[dict[str, object]]:
    return [
        {"id": "data element 1", "value": {"pass": 0, "total": de1}},
        {"id": "data element 2", "value": {"pass": 0, "total": de1 + 1}},
        {"id": "data element both", "value": {"pass": 0, "total": both}},
    ]


@pytest.fixture
def multi_month(couch, monkeypatch):
    """Two data sets (``MULTI``), two places, three months of target docs."""
    docs = [
        contact("chu1", dhis=[{"orgUnit": "ou-1", "dataSet": "ds-1"}, {"orgUnit": "ou-2"}]),
        {**contact("chu2", dhis={"orgUnit": "ou-3"}), "name": "Ünit 2"},
        contact("chw", dhis=None, parent={"_id": "chu1-guid"}),
    ]
    for n, month in enumerate(MONTHS):
        docs.append(target_doc("chw", month, targets=targets(n + 1, 10 * n)))
        docs.append(target_doc("chu2", month, targets=targets(5, n)))
    db = seed(couch, MULTI, docs)
    use_db(monkeypatch, couch, db, CHT_PAGE_SIZE="1")  # a page per doc: the streams page too
    return db


def printed_before(args: dict[str, object], human_readable: bool) -> str:
    """What the command printed before it streamed (``cli.preview`` at be1dc59)."""
    request = RunRequest.from_fields(args, names=CLI_NAMES, trigger="cli", dhis2_ids=False)
    computed = compute(request, RuntimeConfig.from_env(need_dhis2=False))
    today = date.today().isoformat()
    out = io.StringIO()
    sets = [j.value_set(today, human_readable=human_readable).as_export() for j in computed.jobs]
    json.dump(sets, out, indent=2)
    out.write("\n")
    return out.getvalue()


@pytest.mark.parametrize("human_readable", [False, True])
def test_several_data_sets_and_months_print_what_json_dump_printed(
    multi_month, capsys, human_readable
):
    fields = {"from": "2000-01", "to": "2000-03", "dataSet": ["ds-1", "ds-2"]}
    want = printed_before(fields, human_readable)
    capsys.readouterr()
    args = ["preview", "--from", "2000-01", "--to", "2000-03"]
    args += ["--data-set", "ds-1", "--data-set", "ds-2"]
    assert main(args + (["--human-readable"] if human_readable else [])) == 0
    got = capsys.readouterr().out
    sets = json.loads(got)
    assert [(s["dataSet"], s["period"]) for s in sets] == [
        (ds, p)
        for ds in (["dataset 1", "dataset 2"] if human_readable else ["ds-1", "ds-2"])
        for p in ("200001", "200002", "200003")
    ]
    assert json.loads(got) == json.loads(want)
    if not human_readable:
        assert got == want  # byte for byte: only non-ASCII names differ in escaping
    else:
        assert "Ünit 2" in got


def test_a_cht_read_failing_in_a_later_month_is_one_line_and_no_whole_list(
    multi_month, couch, monkeypatch, capsys
):
    """The first month is written when the second month's read fails: the output stops
    there, so no reader mistakes it for the whole answer, and the exit status says so."""
    keep = cht_read.SourceRead.keep  # called once a group of months is read
    groups_read = []

    def then_the_database_goes(src):
        keep(src)
        groups_read.append(src)
        if len(groups_read) == 1:
            couch.session().delete(f"{couch.url}/{multi_month}", timeout=30).raise_for_status()

    monkeypatch.setattr(cht_read.SourceRead, "keep", then_the_database_goes)
    capsys.readouterr()
    assert main(["preview", "--from", "2000-01", "--to", "2000-02", "--data-set", "ds-1"]) == 2
    out, err = capsys.readouterr()
    assert out.startswith("[\n  {") and '"period": "200001"' in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: CHT instance cht")
    assert "Traceback" not in err and couch.password not in err
