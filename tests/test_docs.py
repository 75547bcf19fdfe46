"""The README and docs/ pages: their commands parse, their links resolve, their studies load."""

from __future__ import annotations

import ast
import re
import shlex
import tomllib
from pathlib import Path

import click
import pytest

import hpsearch
from hpsearch.cli import main
from hpsearch.spec import parse_spec
from repo import REPO as ROOT

README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_CHARS = 8000  # a few screens: the two commands, a first study, where to read on

FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]\n]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*$", re.MULTILINE)
SEARCH_TABLE = re.compile(r"^\[search\][ \t]*(#.*)?$", re.MULTILINE)


def rel(page: Path) -> str:
    """A page's path from the repository root, for test ids and messages."""
    return page.relative_to(ROOT).as_posix()


def blocks(page: Path, languages: tuple[str, ...]) -> list[tuple[int, str]]:
    """(first line number, text) of each fenced block in one of `languages` ("" for none)."""
    text = page.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, m.start(2)) + 1, m.group(2))
        for m in FENCE.finditer(text)
        if m.group(1) in languages
    ]


def command_lines(page: Path) -> list[tuple[int, str]]:
    """(line number, command) of each `hpsearch ...` line in the page's shell blocks."""
    found = []
    for start, body in blocks(page, ("", "sh", "bash", "console", "shell")):
        lines = body.splitlines()
        i = 0
        while i < len(lines):
            number, line = start + i, lines[i].strip()
            while line.endswith("\\") and i + 1 < len(lines):  # a continued command
                i += 1
                line = line[:-1] + " " + lines[i].strip()
            line = line.removeprefix("$ ")
            if line.startswith("hpsearch "):
                found.append((number, line))
            i += 1
    return found


COMMANDS = [(page, number, line) for page in PAGES for number, line in command_lines(page)]


def parse_command(line: str) -> click.Context:
    """Parse a shell line with the real CLI, down to the subcommand's options; run nothing."""
    args = shlex.split(line, comments=True)[1:]  # drop "hpsearch" and any trailing # comment
    ctx = main.make_context("hpsearch", list(args))
    # The group takes no option that needs a value, so its first argument is the command.
    name, command, rest = main.resolve_command(ctx, list(args))
    assert name is not None and command is not None, line
    return command.make_context(name, rest, parent=ctx)


@pytest.mark.parametrize(
    ("page", "number", "line"),
    COMMANDS,
    ids=[f"{rel(page)}:{number}" for page, number, _ in COMMANDS],
)
def test_every_documented_command_parses(page: Path, number: int, line: str) -> None:
    """A command shown in the docs is one the CLI accepts: options, values, required ones."""
    try:
        parse_command(line)
    except click.exceptions.Exit as exc:  # --help or --version: accepted, then it exits
        assert exc.exit_code == 0, f"{rel(page)}:{number}: {line}"
    except click.UsageError as exc:
        pytest.fail(f"{rel(page)}:{number}: {line}\n  {exc.format_message()}")


def test_the_docs_show_commands_and_the_check_rejects_a_bad_one() -> None:
    """The extraction finds the commands, and a wrong option or value fails to parse."""
    assert len(COMMANDS) >= 30
    assert {rel(page) for page, _, _ in COMMANDS} >= {"README.md", "docs/cli.md"}
    for bad in (
        "hpsearch run --study mnist-reg --trials 200 --no-such-option",
        "hpsearch run --study mnist-reg --trials N",
        "hpsearch run --study mnist-reg",
        "hpsearch runn --study mnist-reg --trials 200",
        "hpsearch export --study mnist-reg --format xml",
    ):
        with pytest.raises(click.UsageError):
            parse_command(bad)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0).strip("`"), heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The anchors a page's headings make (outside code blocks)."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {slug(h) for h in HEADING.findall(text)}


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_points_to_a_file_in_the_repo(page: Path) -> None:
    """A moved or renamed page or figure must not leave a dead link (or section anchor) behind."""
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text(encoding="utf-8")))
    for target in LINK.findall(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.is_relative_to(ROOT), f"{rel(page)}: {target} leaves the repository"
        assert linked.is_file(), f"{rel(page)}: {target} does not exist"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{rel(page)}: no heading for #{anchor} in {path}"


TOML_BLOCKS = [(page, number, body) for page in PAGES for number, body in blocks(page, ("toml",))]


@pytest.mark.parametrize(
    ("page", "number", "body"),
    TOML_BLOCKS,
    ids=[f"{rel(page)}:{number}" for page, number, _ in TOML_BLOCKS],
)
def test_every_toml_block_is_valid_and_every_study_file_loads(
    page: Path, number: int, body: str
) -> None:
    """A study file shown in full must load as one; a fragment must at least be valid TOML."""
    tomllib.loads(body)
    if SEARCH_TABLE.search(body):
        parse_spec(body, Path(f"{page.stem}.toml"))


def test_the_study_file_page_shows_the_shipped_mnist_reg_verbatim() -> None:
    """The annotated mnist-reg.toml in the docs is the shipped file, not a stale copy."""
    shipped = (ROOT / "studies" / "mnist-reg.toml").read_text(encoding="utf-8")
    shown = [body for _, body in blocks(ROOT / "docs" / "study-files.md", ("toml",))]
    assert shipped in shown


def test_the_readme_shows_a_complete_first_study() -> None:
    """The newcomer's first study is a whole study file that loads, and the README runs it."""
    studies = [body for _, body in blocks(README, ("toml",)) if SEARCH_TABLE.search(body)]
    assert studies and "[data]" in studies[0]  # the first is the built-in MLP's whole file
    readme_commands = [line for page, _, line in COMMANDS if page == README]
    assert any(line.startswith("hpsearch run --study first.toml ") for line in readme_commands)


def test_python_blocks_compile_and_use_the_public_api() -> None:
    """Python examples are valid code and name only what the hpsearch package exports."""
    for page in PAGES:
        for number, body in blocks(page, ("python",)):
            tree = ast.parse(body, f"{rel(page)}:{number}")
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "hpsearch":
                    assert node.attr in hpsearch.__all__, f"{rel(page)}:{number}: {node.attr}"


def test_the_readme_stays_short_and_links_every_docs_page() -> None:
    """The README is a few screens that lead to every reference page, not the reference itself."""
    text = README.read_text(encoding="utf-8")
    assert len(text) < README_MAX_CHARS, f"README.md is {len(text)} characters"
    linked = {(ROOT / target).resolve() for target in LINK.findall(text)}
    assert set(PAGES[1:]) <= linked
