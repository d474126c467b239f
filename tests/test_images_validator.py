"""The pure image reference validator (issue 13) and the generated smoke-test script: no label
or command text can break it."""

from __future__ import annotations

import subprocess

import pytest

from gaffer.images.smoke import Check, image_checks, parse_output, smoke_script
from gaffer.images.validator import InvalidImageReferenceError, parse_image_reference

SHA = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(
    ("reference", "registry", "repository", "tag", "digest"),
    [
        ("worker", None, "worker", None, None),
        ("team/worker:v1", None, "team/worker", "v1", None),
        ("localhost/gaffer-worker:latest", "localhost", "gaffer-worker", "latest", None),
        (
            "127.0.0.1:5000/a/b__c/d.e-f:T_1.2-rc",
            "127.0.0.1:5000",
            "a/b__c/d.e-f",
            "T_1.2-rc",
            None,
        ),
        (f"reg.example.com/w@{SHA}", "reg.example.com", "w", None, SHA),
        (f"[::1]:5000/w:1@{SHA}", "[::1]:5000", "w", "1", SHA),
        ("Registry.Example.com/w", "Registry.Example.com", "w", None, None),
    ],
)
def test_valid_references_parse_into_their_parts(
    reference: str, registry: str | None, repository: str, tag: str | None, digest: str | None
) -> None:
    parsed = parse_image_reference(reference)
    assert (parsed.registry, parsed.repository, parsed.tag, parsed.digest) == (
        registry,
        repository,
        tag,
        digest,
    )
    assert str(parsed) == reference


@pytest.mark.parametrize(
    ("reference", "why"),
    [
        ("", "empty"),
        ("a b", "whitespace"),
        ("x\n", "whitespace"),
        ("localhost/Worker", "must be lowercase"),
        ("localhost:0/w", "port"),
        ("localhost:99999/w", "port"),
        ("localhost:abc/w", "port"),
        ("-bad-.com/w", "host"),
        ("[::1/w", "unclosed"),
        ("a//b", "empty"),
        ("a/", "empty"),
        ("a/-b", "path component"),
        ("a/b_", "path component"),
        ("w:", "tag after ':' is empty"),
        ("w:.x", "may not start"),
        ("w:" + "t" * 129, "longer than 128"),
        ("w@sha256:abc", "64 lowercase hex"),
        ("w@sha256:" + "A" * 64, "64 lowercase hex"),
        ("w@" + "a" * 64, "sha256:<hex>"),
        ("a" * 256, "longer than 255"),
        ("a" * 600, "longer than 512"),
    ],
)
def test_invalid_references_are_refused_with_the_reason(reference: str, why: str) -> None:
    with pytest.raises(InvalidImageReferenceError, match=why):
        parse_image_reference(reference)


NASTY = """it's "quoted" (parens) $(touch /tmp/pwned) `id` \\ ; & | > {brace} *"""


def test_the_smoke_script_is_valid_bash_and_a_nasty_label_is_printed_verbatim(
    tmp_path: object,
) -> None:
    script = smoke_script(
        [
            Check("first (ok)", ("true",)),
            Check(NASTY, ("sh", "-c", "echo 'it broke'; echo second; exit 3")),
            Check("never run", ("sh", "-c", "echo reached > /dev/stderr")),
        ]
    )
    syntax = subprocess.run(["bash", "-n"], input=script, text=True, capture_output=True)
    assert syntax.returncode == 0, syntax.stderr
    run = subprocess.run(["bash", "-c", script], text=True, capture_output=True)
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0] == "OK: first (ok): "
    assert lines[1] == f"FAIL: {NASTY}"
    assert lines[2:] == ["  it broke", "  second", "  (exit 3)"]
    assert "reached" not in run.stderr
    outcome = parse_output(run.stdout)
    assert outcome.failed_label == NASTY
    assert outcome.detail == "it broke"
    assert not outcome.complete


def test_a_label_with_a_newline_stays_on_one_line_and_all_passing_says_so() -> None:
    script = smoke_script([Check("two\nlines", ("printf", "v1.2\\nmore")), Check("x", ("true",))])
    run = subprocess.run(["bash", "-c", script], text=True, capture_output=True)
    assert run.returncode == 0
    assert run.stdout.splitlines() == ["OK: two lines: v1.2", "OK: x: ", "SMOKE: ok"]
    assert parse_output(run.stdout).complete


def test_the_image_checks_name_python_the_worker_git_and_each_engine_cli_once() -> None:
    labels = [c.label for c in image_checks([("codex", "codex"), ("codex", "codex")])]
    assert labels == [
        "python (python --version)",
        "worker entry point (python -m gaffer.worker)",
        "git (git --version)",
        "engine codex CLI (codex --version)",
    ]
