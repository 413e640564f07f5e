"""The README is a front door that links to the docs; every link between them leads somewhere."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmark" / "RESULTS.md"]


def test_every_relative_link_names_an_existing_file() -> None:
    for page in PAGES:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text()):
            if not re.match(r"[a-z]+://", target):
                assert (page.parent / target).exists(), f"{page.relative_to(ROOT)}: link to missing {target}"


def test_the_readme_is_short_and_links_every_doc() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 160
    assert "nox -s tests" in readme and "nox -s reproduce -- table7" in readme
    for doc in (ROOT / "docs").glob("*.md"):
        assert f"](docs/{doc.name})" in readme, f"README.md does not link docs/{doc.name}"
