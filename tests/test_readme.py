"""The README's promises that code can check: the two set-up commands, the catalog table."""

from __future__ import annotations

from pathlib import Path

from scxd.catalog import build_catalog
from scxd.catalog_view import catalog_markdown

REPO = Path(__file__).parents[1]
README = (REPO / "README.md").read_text()


def test_readme_opens_with_the_two_commands():
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert [line.split("#")[0].strip() for line in first_block] == [
        "sudo ./setup.sh run", "sudo ./setup.sh test"]
    assert README.index("```sh") < README.index("scxd watches")


def test_ci_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text()
    assert "exec ./setup.sh test" in ci


def test_catalog_table_is_current():
    assert catalog_markdown(build_catalog()) in README, \
        "README's scheduler table is stale: regenerate with `scxd catalog --markdown`"
