#!/usr/bin/env python3
"""Checks that the documentation's links resolve, so that a moved or renamed contract is caught.

Every relative link in every Markdown file must name a file or folder of the source tree, and
its #anchor, when it has one, a heading of that file. Every Markdown document named in a source
file's text (a comment such as "documented in harness/results/README.md") must exist, beside
that file or from the top of the tree: the project cites no document it does not hold. Bare
lower-case names ("report.md") are files the tools write, not documents, and are not checked.
With --procpool, harness/cli/README.md must hold what `procpool CMD --help` prints for every
command, from its usage line on.

    tests/docs_links_test.py --source-dir . [--procpool build/release/harness/procpool]
"""
import argparse
import pathlib
import re
import subprocess
import sys

SKIP_DIRS = {".git", "build", "out", "__pycache__", "node_modules"}
SOURCE_SUFFIXES = {".cpp", ".hpp", ".py", ".sh", ".toml", ".txt", ".json", ".md"}
LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
CODE_FENCE = re.compile(r"^(```|~~~)")
MD_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")


def files_under(root: pathlib.Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part in SKIP_DIRS or part.startswith("build") for part in rel.parts[:-1]):
            continue
        if path.is_file():
            yield path


def without_code(text: str) -> str:
    """The Markdown text outside fenced code blocks and inline code spans."""
    kept, fenced = [], False
    for line in text.splitlines():
        if CODE_FENCE.match(line.strip()):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: link text kept, lower case, punctuation dropped, spaces
    to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors_of(path: pathlib.Path) -> set:
    found, seen = set(), {}
    for line in without_code(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not m:
            continue
        base = slug(m.group(1))
        n = seen.get(base, 0)
        seen[base] = n + 1
        found.add(base if n == 0 else f"{base}-{n}")
    return found


def check_markdown(path: pathlib.Path, root: pathlib.Path, problems: list) -> int:
    checked = 0
    text = without_code(path.read_text(encoding="utf-8"))
    text = re.sub(r"`[^`\n]*`", "``", text)
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        checked += 1
        file_part, _, anchor = target.partition("#")
        resolved = (path.parent / file_part).resolve() if file_part else path
        where = f"{path.relative_to(root)}: link {target}"
        if root not in resolved.parents and resolved != root:
            problems.append(f"{where}: leaves the source tree")
        elif not resolved.exists():
            problems.append(f"{where}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors_of(resolved):
            problems.append(f"{where}: no heading with anchor #{anchor} in {resolved.relative_to(root)}")
    return checked


def is_document_name(name: str) -> bool:
    """A path ("harness/results/README.md") or an upper-case name ("README.md") names a
    document; a bare lower-case name ("report.md", "triage.md") is one the tools write."""
    stem = name.rsplit("/", 1)[-1][:-3]
    return "/" in name or stem.isupper()


def check_mentions(path: pathlib.Path, root: pathlib.Path, problems: list) -> int:
    checked = 0
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".md":
        text = "\n".join(re.findall(r"`([^`\n]*)`", text))  # links are checked above
    for name in sorted(set(MD_NAME.findall(text))):
        if not is_document_name(name):
            continue
        checked += 1
        if not ((path.parent / name).exists() or (root / name).exists()):
            problems.append(f"{path.relative_to(root)}: names {name}, which is not in the source tree")
    return checked


def help_of(procpool: str, *args: str) -> str:
    out = subprocess.run([procpool, *args, "--help"], capture_output=True, text=True, check=True).stdout
    return out.replace(procpool, "procpool")


def check_cli_help(procpool: str, root: pathlib.Path, problems: list) -> int:
    """Each command's help, from "Usage:" on, must appear in harness/cli/README.md."""
    readme = (root / "harness" / "cli" / "README.md").read_text(encoding="utf-8")
    listing = help_of(procpool).split("Subcommands:", 1)[-1]
    commands = re.findall(r"^  (\w[\w-]*)\s", listing, re.M)  # driver-check has a hyphen
    if not commands:
        problems.append(f"{procpool} --help lists no subcommands")
    for command in commands:
        text = help_of(procpool, command)
        usage = text[text.index("Usage:"):].rstrip("\n")
        if usage not in readme:
            problems.append(f"harness/cli/README.md: does not hold `procpool {command} --help` as it is "
                            f"now; paste its output from Usage: on:\n{usage}")
    return len(commands)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-dir", required=True, type=pathlib.Path)
    parser.add_argument("--procpool", help="the procpool program, to check harness/cli/README.md against")
    args = parser.parse_args()
    root = args.source_dir.resolve()
    problems, links, mentions, docs = [], 0, 0, 0
    for path in files_under(root):
        if path.suffix == ".md":
            docs += 1
            links += check_markdown(path, root, problems)
        if path.suffix in SOURCE_SUFFIXES or path.name == "CMakeLists.txt":
            mentions += check_mentions(path, root, problems)
    commands = check_cli_help(args.procpool, root, problems) if args.procpool else 0
    for p in problems:
        print(p, file=sys.stderr)
    print(f"{docs} Markdown files, {links} relative links, {mentions} names of Markdown files, "
          f"{commands} commands' help; {len(problems)} problems")
    if docs == 0 or links == 0:
        print("found nothing to check: is --source-dir the top of the tree?", file=sys.stderr)
        return 1
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
