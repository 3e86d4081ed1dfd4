"""Every command line the docs mark runnable, run: each ```console block of README.md and
docs/*.md, in a sandbox holding the sample models, the examples and the few files the
docs name (bare.pt, forget.txt). A command exits as the block's next ``$ echo $?`` says,
or 0; an ``error:`` line the block shows is what the command prints."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def console_commands(text: str) -> list[tuple[str, int, list[str]]]:
    """(command, expected exit code, the lines it printed) for every ``$ `` line of every
    console block; ``\\`` continues a command on the next line."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, flags=re.S):
        lines, steps = block.splitlines(), []
        i = 0
        while i < len(lines):
            if not lines[i].startswith("$ "):
                i += 1
                continue
            command = lines[i][2:]
            while command.endswith("\\"):
                i += 1
                command = command[:-1].rstrip() + " " + lines[i].strip()
            i += 1
            printed = []
            while i < len(lines) and not lines[i].startswith("$ "):
                printed.append(lines[i])
                i += 1
            steps.append((command, printed))
        for n, (command, printed) in enumerate(steps):
            if command == "echo $?":
                continue
            following = steps[n + 1] if n + 1 < len(steps) else None
            code = int(following[1][0]) if following and following[0] == "echo $?" else 0
            out.append((command, code, printed))
    return out


CASES = [(doc.relative_to(ROOT).as_posix(), *case) for doc in DOCS for case in console_commands(doc.read_text())]


def test_the_docs_have_runnable_commands_and_the_parser_reads_them():
    assert len(CASES) >= 6 and {doc for doc, *_ in CASES} >= {"README.md", "docs/api.md"}
    sample = "```console\n$ audit a \\\n    --b c\nok\n$ echo $?\n3\n$ audit d\n```\n"
    assert console_commands(sample) == [("audit a --b c", 3, ["ok"]), ("audit d", 0, [])]


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> Path:
    import torch
    from safetensors.torch import load_file

    root = tmp_path_factory.mktemp("docs")
    for folder in ("sample_models", "examples"):
        shutil.copytree(ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # docs/api.md's model "the tool did not train": bare weights, no metadata.
    torch.save(load_file(ROOT / "sample_models" / "digits_mlp_original.safetensors"), root / "bare.pt")
    shutil.copy(ROOT / "sample_models" / "forget_random10.txt", root / "forget.txt")
    return root


@pytest.mark.slow
@pytest.mark.parametrize("doc,command,code,printed", CASES, ids=[f"{c[0]}:{c[1][:50]}" for c in CASES])
def test_a_documented_command_exits_as_documented(sandbox, doc, command, code, printed):
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "COLUMNS": "80"}  # fmt: skip
    done = subprocess.run(["bash", "-c", command], cwd=sandbox, env=env, capture_output=True, text=True,
                          timeout=600)  # fmt: skip
    assert done.returncode == code, f"{doc}: {command}\n{done.stdout[-2000:]}{done.stderr[-2000:]}"
    for line in printed:
        if line.startswith("error:"):
            assert line in done.stderr.splitlines(), f"{doc}: {command} no longer says {line!r}\n{done.stderr}"
