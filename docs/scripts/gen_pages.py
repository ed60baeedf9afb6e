"""mkdocs-gen-files' script: the pages made on each build. The spec and CLI references come from the code;
Contributing and the changelog are the repository's own CONTRIBUTING.md and CHANGELOG.md, so each has one copy."""

import sys
from pathlib import Path

import mkdocs_gen_files

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import reference  # noqa: E402  (beside this script, which mkdocs runs by path)

PAGES = {
    "reference/spec.md": reference.spec_markdown,
    "reference/cli.md": reference.cli_markdown,
    "contributing.md": lambda: (ROOT / "CONTRIBUTING.md").read_text(),
    "changelog.md": lambda: (ROOT / "CHANGELOG.md").read_text(),
}

for path, make in PAGES.items():
    with mkdocs_gen_files.open(path, "w") as page:
        page.write(make())
