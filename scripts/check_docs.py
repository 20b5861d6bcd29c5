#!/usr/bin/env python3
"""Docs that cannot drift from the code. Three checks, each naming the file and line at fault:

1. Environment variables: every variable a binary or Lambda reads (clap `env = "..."`,
   `std::env::var`, `filter_from_env`, `init_cli`, keyed reads of an environment map) or a CDK stack sets on
   a function is named in a doc (the Markdown files and action.yml); every `SSM_*`, `GITHUB_*` or
   `AWS_*` name a doc gives is read somewhere (Rust, scripts, workflows, the CDK app); every
   variable a stack sets is read by our code. Names defined by AWS, Lambda or GitHub are listed
   below with the reason they are exempt.
2. OpenAPI: the statuses and error codes the Crypto API's code can produce (`ApiError`s in
   core/src/api.rs and lambdas/crypto/src) are the ones docs/openapi.yaml declares; the statuses
   the front ends and the route matcher give any request are declared on every operation; and
   README's error table lists exactly the code's (status, code) pairs.
3. Figures: performance figures in docs sit only in blocks marked
   `<!-- figures from BENCHMARKS.md -->` ... `<!-- /figures -->`. A block quotes the report's date,
   which must be BENCHMARKS.md's (so regenerating the report fails until the quotes are revisited),
   and each table row links its BENCHMARKS.md section, which must hold every number in the row.

Usage: python3 scripts/check_docs.py [--root DIR] [--self-test]
(--self-test plants one drift of each kind into an in-memory copy and expects each check to fail.)
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import yaml

SKIP_DIRS = {".git", "node_modules", "target", "build", "cdk.out", ".dev", ".venv", "corpus"}

# Read by our code but defined by the platform that runs it; documenting them would only repeat
# AWS's or GitHub's documentation.
PLATFORM_VARIABLES = {
    "AWS_DEFAULT_REGION": "set by Lambda; the AWS SDK's region fallback",
    "AWS_ACCESS_KEY_ID": "Lambda's execution-role credentials (AWS SDK standard)",
    "AWS_SECRET_ACCESS_KEY": "Lambda's execution-role credentials (AWS SDK standard)",
    "AWS_SESSION_TOKEN": "Lambda's execution-role credentials (AWS SDK standard)",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "AWS SDK standard endpoint setting",
    "AWS_ENDPOINT_URL_SECRETS_MANAGER": "AWS SDK standard service-specific endpoint",
    "ACTIONS_ID_TOKEN_REQUEST_URL": "set by the GitHub Actions runner for OIDC",
    "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "set by the GitHub Actions runner for OIDC",
    "GITHUB_RUN_ID": "set by the GitHub Actions runner",
    "GITHUB_RUN_ATTEMPT": "set by the GitHub Actions runner",
    "PATH": "the shell's",
}

# Named in docs or set by a stack, read by software that is not ours.
EXTERNAL_VARIABLES = {
    "AWS_LWA_PORT": "read by the AWS Lambda Web Adapter (the App's layer)",
    "AWS_LWA_READINESS_CHECK_PATH": "read by the AWS Lambda Web Adapter (the App's layer)",
    "AWS_IAM": "not a variable: API Gateway's IAM authorization type",
    "AWS_PROXY": "not a variable: API Gateway's Lambda proxy integration type",
}

DOC_NAME = re.compile(r"\b((?:SSM|GITHUB|AWS)_[A-Z0-9_]*[A-Z0-9])\b")

# Reads of one variable, by language. Group 1 is the name.
RUST_READS = [
    re.compile(r"\benv\s*=\s*\"([A-Z][A-Z0-9_]+)\""),  # clap
    re.compile(r"\benv::var(?:_os)?\(\s*\"([A-Z][A-Z0-9_]+)\""),
    re.compile(r"\b(?:filter_from_env|init_cli)\(\s*\"([A-Z][A-Z0-9_]+)\""),
    re.compile(r"\b(?:get|var)\(\s*\"([A-Z][A-Z0-9_]+)\"\s*\)"),  # an environment map or getter
]
SCRIPT_READS = [
    re.compile(r"\$\{?([A-Z][A-Z0-9_]+)\b"),  # shell, workflows, Dockerfile
    re.compile(r"\b(?:vars|env|secrets)\.([A-Z][A-Z0-9_]+)\b"),  # workflow expressions
    re.compile(r"environ(?:\.get)?[\[(]\s*[\"']([A-Z][A-Z0-9_]+)[\"']"),  # python
    re.compile(r"getenv\(\s*[\"']([A-Z][A-Z0-9_]+)[\"']"),
    re.compile(r"process\.env(?:\.|\[[\"'])([A-Z][A-Z0-9_]+)"),  # TypeScript
]
CDK_SETS = [
    re.compile(r"^\s*((?:SSM|GITHUB|AWS)_[A-Z0-9_]+)\s*:", re.M),
    re.compile(r"[{,]\s*((?:SSM|GITHUB|AWS)_[A-Z0-9_]+)\s*:"),
    re.compile(r"\benvironment\.([A-Z][A-Z0-9_]+)\s*="),
]

FIGURES_BEGIN = "<!-- figures from BENCHMARKS.md -->"
FIGURES_END = "<!-- /figures -->"
# A performance figure: a throughput, a sub-millisecond time, or a measured time in ms (a median,
# a percentile, a cold start or spawn); settings such as "a backoff from 250 ms" are not figures.
PERF_FIGURE = re.compile(r"\d[\d,.]*\s*(?:req/s|events/s|µs|ns\b)")
MEASURED_MS = re.compile(r"(?i)(?=.*\b\d[\d.]*\s*ms\b)(?=.*(?:cold start|median|p50|p99|spawn))")
NUMBER = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")


class Tree:
    """The repository's text files, with in-memory replacements for the self-test."""

    def __init__(self, root: Path, overrides: dict[str, str] | None = None):
        self.root = root
        self.overrides = overrides or {}
        self.paths = sorted(self._walk())

    def _walk(self):
        for dirpath, dirnames, filenames in os.walk(self.root):
            dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
            for name in filenames:
                yield Path(dirpath, name).relative_to(self.root).as_posix()

    def read(self, path: str) -> str:
        if path in self.overrides:
            return self.overrides[path]
        try:
            return (self.root / path).read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return ""

    def glob(self, pattern: str) -> list[str]:
        regex = re.compile(pattern)
        return [p for p in self.paths if regex.fullmatch(p)]

    def docs(self) -> list[str]:
        # BENCHMARKS.md is generated; CHANGELOG.md is history and may name what is gone.
        not_docs = {"BENCHMARKS.md", "CHANGELOG.md"}
        return [p for p in self.glob(r".*\.md") if p not in not_docs] + ["action.yml"]


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def without_tests(source: str) -> str:
    """Rust source up to its `#[cfg(test)]` module (by convention the last item)."""
    cut = source.find("#[cfg(test)]")
    return source if cut < 0 else source[:cut]


def rust_sources(tree: Tree) -> list[str]:
    return tree.glob(r".*\.rs")


def is_shipped(path: str) -> bool:
    """Code a binary or Lambda runs: src/, not tests, benches or examples."""
    return "/src/" in f"/{path}" and not re.search(r"/(tests|benches|examples)/", f"/{path}")


def reads_in_rust(tree: Tree, shipped_only: bool) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in rust_sources(tree):
        if shipped_only and not is_shipped(path):
            continue
        text = tree.read(path)
        if shipped_only:
            text = without_tests(text)
        for pattern in RUST_READS:
            for m in pattern.finditer(text):
                found.setdefault(m.group(1), f"{path}:{line_of(text, m.start())}")
    return found


def reads_in_scripts(tree: Tree) -> set[str]:
    paths = tree.glob(r".*\.(sh|py|ts|yml|yaml)|.*Dockerfile|\.github/workflows/.*")
    names: set[str] = set()
    for path in paths:
        if path.startswith("cdk/test/"):
            continue
        text = tree.read(path)
        for pattern in SCRIPT_READS:
            names.update(m.group(1) for m in pattern.finditer(text))
    return names


def set_by_cdk(tree: Tree) -> dict[str, str]:
    found: dict[str, str] = {}
    for path in tree.glob(r"cdk/lib/.*\.ts"):
        text = tree.read(path)
        for pattern in CDK_SETS:
            for m in pattern.finditer(text):
                found.setdefault(m.group(1), f"{path}:{line_of(text, m.start())}")
    return found


def check_environment(tree: Tree) -> list[str]:
    errors = []
    docs = {p: tree.read(p) for p in tree.docs()}
    documented = set()
    for text in docs.values():
        documented.update(re.findall(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b", text))

    shipped = reads_in_rust(tree, shipped_only=True)
    stack_sets = set_by_cdk(tree)
    needs_doc = {**stack_sets, **shipped}
    for name, where in sorted(needs_doc.items()):
        if name in documented or name in PLATFORM_VARIABLES or name in EXTERNAL_VARIABLES:
            continue
        errors.append(f"{where}: {name} is read or set here but named in no doc "
                      "(README.md, docs/, a crate README or action.yml)")

    for name, where in sorted(stack_sets.items()):
        if name not in shipped and name not in EXTERNAL_VARIABLES:
            errors.append(f"{where}: the stack sets {name}, which no binary reads")

    read_anywhere = set(reads_in_rust(tree, shipped_only=False)) | reads_in_scripts(tree)
    for path, text in docs.items():
        for m in DOC_NAME.finditer(text):
            name = m.group(1)
            if name in read_anywhere or name in EXTERNAL_VARIABLES or name in PLATFORM_VARIABLES:
                continue
            errors.append(f"{path}:{line_of(text, m.start())}: names {name}, which nothing reads")
    return sorted(set(errors))


def api_errors(tree: Tree) -> tuple[set[tuple[int, str]], set[int]]:
    """(status, code) pairs the Crypto API can answer, and the statuses any request can get
    before its operation runs (the front ends and the route matcher)."""
    api = without_tests(tree.read("core/src/api.rs"))
    helpers = {}
    for m in re.finditer(r"fn (\w+)\([^)]*\)\s*->\s*Self\s*\{\s*Self::new\(\s*(\d{3}),\s*\"(\w+)\"", api):
        helpers[m.group(1)] = (int(m.group(2)), m.group(3))
    new = re.compile(r"(?:ApiError|Self)::new\(\s*(\d{3}),\s*\"(\w+)\"")
    helper_call = re.compile(r"ApiError::(\w+)\b")

    def errors_in(text: str) -> set[tuple[int, str]]:
        pairs = {(int(m.group(1)), m.group(2)) for m in new.finditer(text)}
        pairs |= {helpers[m.group(1)] for m in helper_call.finditer(text) if m.group(1) in helpers}
        return pairs

    crypto = [without_tests(tree.read(p)) for p in tree.glob(r"lambdas/crypto/src/.*\.rs")]
    every = errors_in(api) | set().union(*(errors_in(t) for t in crypto))
    matcher = re.search(r"pub fn from_request.*?\n    }\n", api, re.S)
    if not matcher:
        raise SystemExit("check_docs: Route::from_request is not in core/src/api.rs any more; "
                         "tell api_errors() where the route matcher is")
    front_ends = [without_tests(tree.read(p)) for p in
                  ("lambdas/crypto/src/local.rs", "lambdas/crypto/src/lambda.rs")]
    before = errors_in(matcher.group(0))
    before |= set().union(*(errors_in(t) for t in front_ends))
    return every, {status for status, _ in before}


# Statuses API Gateway itself answers on the deployed API, before our code runs.
GATEWAY_STATUSES = {403: "the HTTP API's IAM authorization refuses the caller"}


def check_openapi(tree: Tree) -> list[str]:
    errors = []
    spec = yaml.safe_load(tree.read("docs/openapi.yaml"))
    pairs, universal = api_errors(tree)
    statuses = {s for s, _ in pairs}
    codes = {c for _, c in pairs}

    declared_anywhere = set()
    for path, item in spec["paths"].items():
        for method, op in item.items():
            declared = {int(s) for s in op.get("responses", {}) if str(s).isdigit()}
            declared_anywhere |= declared
            for status in sorted(universal - declared):
                errors.append(f"docs/openapi.yaml: {method.upper()} {path} does not declare {status}, "
                              "which the route matcher or a front end gives any request")
            for status in sorted(declared - statuses - {200} - set(GATEWAY_STATUSES)):
                errors.append(f"docs/openapi.yaml: {method.upper()} {path} declares {status}, "
                              "which the Crypto API never answers")
    for status in sorted(statuses - declared_anywhere):
        errors.append(f"docs/openapi.yaml: no operation declares {status}, which the code answers")

    enum = set(spec["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"])
    for code in sorted(codes - enum):
        errors.append(f"docs/openapi.yaml: the Error code enum lacks `{code}`, which the code answers")
    for code in sorted(enum - codes):
        errors.append(f"docs/openapi.yaml: the Error code enum lists `{code}`, which no code path answers")

    readme = tree.read("README.md")
    table = re.search(r"\| status \| code \|.*?\n\n", readme, re.S)
    if not table:
        errors.append("README.md: no error table (a `| status | code | ... |` table in Crypto API)")
        return errors
    listed = set()
    for row in table.group(0).splitlines()[2:]:
        cells = [c.strip() for c in row.strip("|").split("|")]
        if cells and cells[0].isdigit():
            listed |= {(int(cells[0]), c) for c in re.findall(r"`(\w+)`", cells[1])}
    for status, code in sorted(pairs - listed):
        errors.append(f"README.md: the error table lacks {status} `{code}`")
    for status, code in sorted(listed - pairs):
        errors.append(f"README.md: the error table lists {status} `{code}`, which the code never answers")
    return errors


def slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def benchmark_sections(text: str) -> dict[str, str]:
    sections, current = {}, None
    for line in text.splitlines():
        if line.startswith("#"):
            current = slug(line.lstrip("#"))
            sections[current] = ""
        elif current:
            sections[current] += line + "\n"
    return sections


def numbers(text: str) -> set[str]:
    return {n.replace(",", "") for n in NUMBER.findall(text)}


def check_figures(tree: Tree) -> list[str]:
    errors = []
    bench = tree.read("BENCHMARKS.md")
    date = re.search(r"^\| date \| ([^|]+?) \|", bench, re.M)
    sections = benchmark_sections(bench)
    found_block = False
    for path in tree.docs():
        text = tree.read(path)
        inside = False
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.strip() == FIGURES_BEGIN:
                inside, found_block, block_start, quoted_date = True, True, lineno, False
                continue
            if line.strip() == FIGURES_END and inside:
                inside = False
                if not (date and quoted_date):
                    errors.append(f"{path}:{block_start}: the figures block does not quote "
                                  f"BENCHMARKS.md's date ({date.group(1) if date else 'missing'})")
                continue
            if not inside:
                if PERF_FIGURE.search(line) or MEASURED_MS.search(line):
                    errors.append(f"{path}:{lineno}: a performance figure outside a figures block: "
                                  "quote BENCHMARKS.md in one (see scripts/check_docs.py)")
                continue
            if date and date.group(1) in line:
                quoted_date = True
            if not line.startswith("|") or re.fullmatch(r"\|[-| :]*\|", line.strip()):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            link = re.search(r"BENCHMARKS\.md#([\w-]+)", cells[0])
            if cells[0].lower() in {"what", "figure"}:
                continue
            if not link or link.group(1) not in sections:
                errors.append(f"{path}:{lineno}: the row does not link an existing BENCHMARKS.md section")
                continue
            row = re.sub(r"\([^)]*BENCHMARKS\.md#[\w-]+\)", "", line)
            missing = sorted(numbers(row) - numbers(sections[link.group(1)]))
            if missing:
                errors.append(f"{path}:{lineno}: {', '.join(missing)} not in BENCHMARKS.md "
                              f"section #{link.group(1)}")
    if not found_block:
        errors.append("README.md: no figures block quoting BENCHMARKS.md")
    return errors


CHECKS = {"environment": check_environment, "openapi": check_openapi, "figures": check_figures}


def run(tree: Tree) -> dict[str, list[str]]:
    return {name: check(tree) for name, check in CHECKS.items()}


def self_test(root: Path) -> list[str]:
    """Each check must fail when one side drifts alone; returns what did not."""
    base = Tree(root)
    readme = base.read("README.md")
    bench = base.read("BENCHMARKS.md")
    crypto_cfg = base.read("lambdas/crypto/src/config.rs")
    api = base.read("core/src/api.rs")
    spec = base.read("docs/openapi.yaml")
    # A figure README quotes: the first number with a separator in the figures block's first row.
    block = readme[readme.find(FIGURES_BEGIN):]
    row = next((line for line in block.splitlines() if "BENCHMARKS.md#" in line), "")
    quoted = next((n for n in NUMBER.findall(re.sub(r"\(BENCHMARKS[^)]*\)", "", row))
                   if re.search(r"[,.]", n)), "no figure quoted")
    # (check, files replaced, a text the check's report must contain)
    plants = [
        ("environment", {"lambdas/crypto/src/config.rs": crypto_cfg.replace(
            'env = "SSM_MAX_BATCH"', 'env = "SSM_UNDOCUMENTED_SETTING"')},
         "SSM_UNDOCUMENTED_SETTING is read or set here but named in no doc"),
        ("environment", {"README.md": readme + "\nSet `SSM_NOTHING_READS_THIS`.\n"},
         "names SSM_NOTHING_READS_THIS, which nothing reads"),
        ("openapi", {"core/src/api.rs": api.replace('Self::new(404, "not_found"', 'Self::new(410, "not_found"')},
         "does not declare 410"),
        ("openapi", {"docs/openapi.yaml": spec.replace("'408':", "'418':", 1)},
         "declares 418, which the Crypto API never answers"),
        ("openapi", {"README.md": readme.replace("| 408 | `request_timeout` |", "| 409 | `request_timeout` |")},
         "the error table lacks 408 `request_timeout`"),
        ("figures", {"BENCHMARKS.md": re.sub(rf"(?<![\d,.]){re.escape(quoted)}(?![\d,])", "9.87654", bench)},
         f"{quoted.replace(',', '')} not in BENCHMARKS.md"),
        ("figures", {"README.md": readme.replace(row, row.replace(quoted, quoted + "1", 1))},
         f"{quoted.replace(',', '')}1 not in BENCHMARKS.md"),
        ("figures", {"BENCHMARKS.md": re.sub(r"(\| date \| )[^|]+", r"\g<1>2099-01-01 00:00 UTC ", bench)},
         "does not quote BENCHMARKS.md's date"),
        ("figures", {"README.md": readme + "\nThe cold start is 12.5 ms.\n"},
         "a performance figure outside a figures block"),
    ]
    survived = []
    for check, overrides, expected in plants:
        report = CHECKS[check](Tree(root, overrides))
        if not any(expected in line for line in report):
            survived.append(f"{check}: a planted drift in {', '.join(overrides)} was not reported "
                            f"as '{expected}'")
    return survived


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--self-test", action="store_true")
    args = parser.parse_args()
    if args.self_test:
        survived = self_test(args.root)
        for line in survived:
            print(f"self-test: {line}", file=sys.stderr)
        print(f"check_docs self-test: {'FAILED' if survived else 'every planted drift caught'}")
        return 1 if survived else 0
    results = run(Tree(args.root))
    failed = False
    for name, errors in results.items():
        for error in errors:
            print(f"{name}: {error}", file=sys.stderr)
        print(f"check_docs {name}: {'FAILED, ' + str(len(errors)) + ' problem(s)' if errors else 'ok'}")
        failed |= bool(errors)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
