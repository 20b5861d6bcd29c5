#!/usr/bin/env python3
"""Checks the rules that keep unreviewed code away from the deploy role (issue 19, point 2).

    python3 scripts/check-workflows.py [DEPLOY_YML [RELEASE_YML [CI_YML]]]

deploy.yml:
  - the deploy Action runs from the deployed commit (`uses: ./`) or from a checkout (`uses:
    ./<path>`) whose `ref` is a literal 40-hex commit id or exactly
    `${{ env.SSM_ACTION_COMMIT || steps.commit.outputs.sha }}`, where SSM_ACTION_COMMIT is a
    literal, empty or 40 hex, and the `commit` step records `git rev-parse HEAD`;
  - every other `uses:` is pinned to a 40-hex commit (a `docker://` one to a digest);
  - caches are saved only by runs on main (what deploy and reconcile restore);
  - no `ref:`, `repository:` or `uses:` reads an input, a dispatch payload or the head ref, and
    workflow_dispatch has no input but `mode`;
  - Rust is pinned to the toolchain ci.yml installs.
release.yml:
  - every job that may write (contents, packages) runs only on refs/heads/main: a job-level
    `if: github.ref == 'refs/heads/main'`, or it needs a job whose step fails unless on main;
  - no tag is forced (`git tag -f`, `push --force`), every action is pinned to a commit.
Prints each violation and exits 1 if there is any.
"""
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHA = re.compile(r"^[0-9a-f]{40}$")
ACTION_REF = "${{ env.SSM_ACTION_COMMIT || steps.commit.outputs.sha }}"
# What a writer (or a dispatch) controls, not what review of main protected.
UNTRUSTED = re.compile(r"\binputs\.|github\.event\.inputs|client_payload|github\.head_ref|github\.event\.pull_request")
MAIN_GUARD = "github.ref == 'refs/heads/main'"
RUST_PIN = re.compile(r"rustup toolchain install (\S+)")


def load(path: Path) -> dict:
    doc = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def local_path(p: str) -> str:
    return p.removeprefix("./").rstrip("/")


def steps_of(job: dict) -> list:
    return job.get("steps") or []


def check_deploy(doc: dict, ci: dict | None) -> list[str]:
    errors: list[str] = []
    env = doc.get("env") or {}
    pinned = env.get("SSM_ACTION_COMMIT")
    if not isinstance(pinned, str) or not (pinned == "" or SHA.match(pinned)):
        errors.append(f"env.SSM_ACTION_COMMIT must be a literal 40-hex commit id or empty, got {pinned!r}")

    dispatch = (doc.get("on") or {}).get("workflow_dispatch") or {}
    inputs = set((dispatch.get("inputs") or {}).keys()) if isinstance(dispatch, dict) else set()
    if inputs - {"mode"}:
        errors.append(f"workflow_dispatch may take only `mode`, not {sorted(inputs - {'mode'})} (no input picks the Action's code)")

    pins = set()
    for name, job in (doc.get("jobs") or {}).items():
        checkouts = {}
        commit_step = False
        for i, step in enumerate(steps_of(job)):
            where = f"jobs.{name}.steps[{i}]"
            uses = step.get("uses", "")
            with_ = step.get("with") or {}
            for key in ("ref", "repository"):
                if UNTRUSTED.search(str(with_.get(key, ""))):
                    errors.append(f"{where}: `{key}: {with_[key]}` is chosen by a writer, not by main")
            if step.get("id") == "commit" and "git rev-parse HEAD" in step.get("run", ""):
                commit_step = True
            run = re.sub(r"\$\{?SSM_RUST_TOOLCHAIN\}?", str(env.get("SSM_RUST_TOOLCHAIN", "")), step.get("run", "")).replace('"', "")
            for m in RUST_PIN.finditer(run):
                pins.add(m.group(1))
            if uses.startswith("./"):
                path = local_path(uses)
                if path == "":
                    continue  # the deployed commit's own action.yml
                co = checkouts.get(path)
                if co is None:
                    errors.append(f"{where}: `uses: {uses}` is not a checkout of this job (path {path!r})")
                    continue
                ref = str((co.get("with") or {}).get("ref", ""))
                if (co.get("with") or {}).get("repository"):
                    errors.append(f"{where}: the Action's checkout names another repository")
                if SHA.match(ref):
                    continue
                if ref != ACTION_REF:
                    errors.append(f"{where}: the Action is checked out at {ref!r}: not a 40-hex commit nor {ACTION_REF}")
                elif not commit_step:
                    errors.append(f"{where}: no `commit` step (`git rev-parse HEAD`) before the Action's checkout")
            elif uses.startswith("docker://"):
                if not re.search(r"@sha256:[0-9a-f]{64}$", uses):
                    errors.append(f"{where}: `uses: {uses}` is not pinned by digest")
            elif uses:
                if UNTRUSTED.search(uses) or "${{" in uses:
                    errors.append(f"{where}: `uses: {uses}` is an expression")
                ref = uses.rpartition("@")[2]
                if not SHA.match(ref):
                    errors.append(f"{where}: `uses: {uses}` is not pinned to a 40-hex commit (a tag or branch can move)")
                action = uses.split("@")[0]
                if action == "actions/cache":
                    errors.append(f"{where}: actions/cache saves from any ref: use actions/cache/restore, and actions/cache/save on main only")
                if action == "actions/cache/save" and MAIN_GUARD not in str(step.get("if", "")).replace('"', "'"):
                    errors.append(f"{where}: a cache save without `if: ... {MAIN_GUARD}` (a pull request could plant what main restores)")
                if action == "actions/checkout":
                    checkouts[local_path(str(with_.get("path", "")))] = step
    if ci is not None:
        ci_pins = {m.group(1) for job in (ci.get("jobs") or {}).values() for s in steps_of(job) for m in RUST_PIN.finditer(s.get("run", ""))}
        if not pins:
            errors.append("deploy.yml does not pin the Rust toolchain (`rustup toolchain install X`), as ci.yml does")
        elif pins != ci_pins:
            errors.append(f"deploy.yml pins Rust {sorted(pins)}, ci.yml {sorted(ci_pins)}: one toolchain")
    return errors


def check_release(doc: dict) -> list[str]:
    errors: list[str] = []
    jobs = doc.get("jobs") or {}

    def guarded_step(job: dict) -> bool:
        for step in steps_of(job):
            cond = str(step.get("if", "")).replace('"', "'")
            if cond.strip() == "github.ref != 'refs/heads/main'" and "exit 1" in step.get("run", ""):
                return True
        return False

    def on_main_only(name: str, seen: frozenset = frozenset()) -> bool:
        job = jobs[name]
        if MAIN_GUARD in str(job.get("if", "")).replace('"', "'") or guarded_step(job):
            return True
        needs = job.get("needs") or []
        needs = [needs] if isinstance(needs, str) else needs
        return any(n in jobs and n not in seen and on_main_only(n, seen | {name}) for n in needs)

    for name, job in jobs.items():
        perms = job.get("permissions") or doc.get("permissions") or {}
        writes = perms == "write-all" or (isinstance(perms, dict) and "write" in perms.values())
        if writes and not on_main_only(name):
            errors.append(f"release.yml: job {name} may write but does not refuse refs other than refs/heads/main")
        for i, step in enumerate(steps_of(job)):
            uses = step.get("uses", "")
            if uses and not uses.startswith("./") and not SHA.match(uses.rpartition("@")[2]):
                errors.append(f"release.yml: jobs.{name}.steps[{i}]: `uses: {uses}` is not pinned to a 40-hex commit (it runs with write access)")
            run = step.get("run", "")
            if re.search(r"git tag (-f|--force)\b|git push (--force|-f)\b", run):
                errors.append(f"release.yml: jobs.{name}.steps[{i}] forces a tag (tags are immutable)")
    if not jobs:
        errors.append("release.yml has no jobs")
    return errors


def main(argv: list[str]) -> int:
    wf = ROOT / ".github" / "workflows"
    deploy = Path(argv[1]) if len(argv) > 1 else wf / "deploy.yml"
    release = Path(argv[2]) if len(argv) > 2 else wf / "release.yml"
    ci = Path(argv[3]) if len(argv) > 3 else wf / "ci.yml"
    errors = [f"{deploy}: {e}" for e in check_deploy(load(deploy), load(ci) if ci.exists() else None)]
    errors += [f"{release}: {e}" for e in check_release(load(release))]
    for e in errors:
        print(f"error: {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
