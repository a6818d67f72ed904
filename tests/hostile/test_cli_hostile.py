"""Hostile command lines over every command: each is refused in one clean line and writes nothing.

Each case runs the real ``lens`` click group in-process (a subprocess costs a
second here) against a workspace of valid and broken files, and checks the
whole contract: non-zero exit, no traceback, exactly one ``error:`` line on
stderr naming the problem, nothing on stdout, and every file in the workspace
byte-for-byte unchanged with nothing added. ``{ws}`` is the workspace.
"""

from __future__ import annotations

import pytest

from tests.hostile.conftest import assert_clean_refusal, invoke, snapshot

LONG = "x" * 300
NAN_VALUES = ["nan", "NaN", "inf", "-inf", "+inf", "1e999"]
BAD_COUNTS = ["0", "-1", "-2", "abc", "1.5", ""]
MODELS = "same model"

CASES: list[tuple[str, str, list[str]]] = []


def case(name: str, args: str, *needles: str) -> None:
    CASES.append((name, args, list(needles)))


# --------------------------------------------------------------------- analysis
for value in NAN_VALUES:
    case(f"stats-tau-{value}", f"stats {{ws}}/a.safetensors --tau {value}", "--tau")
    case(f"ablate-threshold-{value}", f"ablate {{ws}}/a.safetensors --r 2 --threshold {value}",
         "--threshold")  # fmt: skip
    case(f"compare-tau-{value}", f"compare {{ws}}/a.safetensors {{ws}}/b.safetensors --r 2 "
         f"--tau {value}", "--tau")  # fmt: skip
for value in ["-0.1", "1.5", "abc"]:
    case(f"stats-tau-{value}", f"stats {{ws}}/a.safetensors --tau {value}", "--tau")
    case(f"ablate-threshold-{value}", f"ablate {{ws}}/a.safetensors --r 2 --threshold {value}",
         "--threshold")  # fmt: skip
for value in ["-1", "-100", "abc", "1.5"]:
    case(f"ablate-seed-{value}", f"ablate {{ws}}/a.safetensors --r 2 --seed {value}", "--seed")
for value in BAD_COUNTS:
    case(f"ablate-step-{value!r}", f"ablate {{ws}}/a.safetensors --r 2 --step '{value}'", "--step")
    case(f"ablate-max-{value!r}", f"ablate {{ws}}/a.safetensors --r 2 --max '{value}'", "--max")
for value in ["0", "-1", "9", "99999999999999999999999", "abc"]:
    case(f"compare-r-{value}", f"compare {{ws}}/a.safetensors {{ws}}/b.safetensors --r {value}",
         "r")  # fmt: skip
    case(f"ablate-r-{value}", f"ablate {{ws}}/a.safetensors --r {value}", "r")
    case(f"matrix-r-{value}", f"matrix {{ws}}/bundles --r {value}", "r")
for command in ("stats {}", "ablate {} --r 2", "compare {} {{ws}}/a.safetensors --r 2",
                "matrix {} {{ws}}/a.safetensors --r 2"):  # fmt: skip
    verb = command.split()[0]
    for broken, needle in [("missing.safetensors", "missing.safetensors"),
                           ("empty.safetensors", "empty.safetensors"),
                           ("truncated.safetensors", "truncated.safetensors"),
                           ("text.safetensors", "text.safetensors"),
                           ("nobundles", "nobundles" if verb in ("stats", "ablate") else ""),
                           ("mask.json", "mask.json")]:  # fmt: skip
        case(f"{verb}-{broken}", command.format(f"{{ws}}/{broken}"), needle)
case("compare-other-model", "compare {ws}/a.safetensors {ws}/other.safetensors --r 2",
     "other-moe", MODELS)  # fmt: skip
case("compare-other-shape", "compare {ws}/a.safetensors {ws}/wide.safetensors --r 2", MODELS)
case("matrix-other-model", "matrix {ws}/mixed --r 2", "other-moe", MODELS)
case("matrix-other-shape", "matrix {ws}/bundles {ws}/wide.safetensors --r 2", MODELS)

# --------------------------------------------------------------------- masks
MASK = "mask {ws}/a.safetensors --r 2"
for value in BAD_COUNTS:
    case(f"mask-groups-{value!r}", f"{MASK} --groups '{value}' -o {{ws}}/new.json", "--groups")
    case(f"mask-min-per-layer-{value!r}",
         f"mask {{ws}}/a.safetensors --budget 8 --min-per-layer '{value}' -o {{ws}}/new.json",
         "--min-per-layer")  # fmt: skip
for value in ["0", "-1", "9", "abc"]:
    case(f"mask-r-{value}", f"mask {{ws}}/a.safetensors --r {value} -o {{ws}}/new.json", "r")
for value in ["0", "-5", "1", "99999", "abc"]:
    case(f"mask-budget-{value}", f"mask {{ws}}/a.safetensors --budget {value} -o {{ws}}/new.json",
         "budget")  # fmt: skip
for out, needle in [
    ("{ws}/a.safetensors", "inputs"),
    ("{ws}/bundles/a.safetensors", ".json"),
    ("{ws}/b.safetensors", ".json"),
    ("{ws}/data.txt", ".json"),
    ("{ws}/mask.json", ""),  # an existing non-input file is replaced: see test below
    ("/proc/x.json", "/proc"),
    ("/proc/self/x.json", "/proc"),
    ("/sys/x.json", "/sys"),
    ("{ws}/file/x.json", "is a file"),
    ("{ws}/file/deeper/x.json", "is a file"),
    ("{ws}/raw", "is a folder"),
    ("{ws}", "input"),
    ("{ws}/new", ".json"),
    (f"{{ws}}/{LONG}.json", "255"),
    (f"{{ws}}/{LONG}/x.json", "255"),
    ("' '", "not a usable path"),
]:
    if not needle:
        continue
    case(f"mask-out-{out[-24:]}", f"{MASK} -o {out}", needle)
    if "bundles" not in out:
        folder_needle = ".json" if out == "{ws}/a.safetensors" else needle  # not an input here
        case(f"mask-folder-out-{out[-24:]}", f"mask {{ws}}/bundles --r 2 -o {out}", folder_needle)
case("mask-folder-input-replaced", "mask {ws}/bundles --r 2 -o {ws}/bundles/b.safetensors",
     "input folder")  # fmt: skip
case("mask-pool-other-model", "mask {ws}/a.safetensors {ws}/other.safetensors --r 2 "
     "-o {ws}/new.json", MODELS)  # fmt: skip
case("mask-pool-other-shape", "mask {ws}/a.safetensors {ws}/wide.safetensors --r 2 "
     "-o {ws}/new.json", MODELS)  # fmt: skip
case("mask-unknown-criterion", f"{MASK} -c magic -o {{ws}}/new.json", "--criterion")
case("mask-no-out", MASK, "--out")
case("mask-groups-not-dividing", f"{MASK} --groups 3 -o {{ws}}/new.json", "groups")
case("masks-compare-other-model", "masks-compare {ws}/mask.json {ws}/a.safetensors "
     "{ws}/other.safetensors", MODELS)  # fmt: skip
case("masks-compare-unknown-criteria", "masks-compare {ws}/a.safetensors --criteria mass,magic "
     "--r 2", "magic")  # fmt: skip
case("masks-compare-r-without-criteria", "masks-compare {ws}/mask.json --r 2", "--criteria")
case("masks-compare-garbage", "masks-compare {ws}/garbage.json", "garbage.json")
case("masks-compare-missing", "masks-compare {ws}/missing.json", "missing.json")

# --------------------------------------------------------------------- merge
for out, needle in [
    ("{ws}/a.safetensors", "inputs"),
    ("{ws}/b.safetensors", "inputs"),
    ("/proc/x.safetensors", "/proc"),
    ("{ws}/file/x.safetensors", "is a file"),
    ("{ws}/raw", "is a folder"),
    (f"{{ws}}/{LONG}.safetensors", "255"),
]:
    case(f"merge-out-{out[-24:]}", f"merge {{ws}}/a.safetensors {{ws}}/b.safetensors -o {out}",
         needle)  # fmt: skip
case("merge-folder-out-in-folder", "merge {ws}/bundles -o {ws}/bundles/b.safetensors", "input")
case("merge-other-model", "merge {ws}/a.safetensors {ws}/other.safetensors -o {ws}/m.safetensors",
     "other-moe")  # fmt: skip
case("merge-other-shape", "merge {ws}/a.safetensors {ws}/wide.safetensors -o {ws}/m.safetensors",
     "num_experts")  # fmt: skip
case("merge-broken-part", "merge {ws}/a.safetensors {ws}/truncated.safetensors "
     "-o {ws}/m.safetensors", "truncated.safetensors")  # fmt: skip
case("merge-no-parts", "merge -o {ws}/m.safetensors", "PATHS")

# --------------------------------------------------------------------- evaluate
EVAL = "evaluate -m {ws}/model --masks {ws}/mask.json -d {ws}/data.txt"
for out, needle in [
    ("/proc/x.json", "/proc"),
    ("{ws}/mask.json", "inputs"),
    ("{ws}/model/config.json", "input folder"),
    ("{ws}/file/x.json", "is a file"),
    (f"{{ws}}/{LONG}.json", "255"),
    ("{ws}/x.txt", ".json"),
]:
    case(f"evaluate-out-{out[-24:]}", f"{EVAL} -o {out}", needle)
case("evaluate-out-data", "evaluate -m {ws}/model --masks {ws}/mask.json -d {ws}/eval.json "
     "-o {ws}/eval.json", "inputs")  # fmt: skip
for option, value in [("--max-length", "0"), ("--max-length", "-3"), ("--max-length", "1"),
                      ("--max-length", "99999999999"), ("--batch-size", "0"),
                      ("--batch-size", "-1"), ("-n", "0"), ("-n", "-4"),
                      ("--lm-eval-limit", "nan"), ("--lm-eval-limit", "0")]:  # fmt: skip
    case(f"evaluate{option}-{value}", f"{EVAL} {option} {value}", "max-length" if
         option == "--max-length" and value == "1" else option.lstrip("-")[:5])  # fmt: skip
case("predict-missing", "predict-vs-actual {ws}/missing.json {ws}/a.safetensors", "missing")
case("predict-garbage", "predict-vs-actual {ws}/garbage.json {ws}/a.safetensors", "garbage")

# --------------------------------------------------------------------- collect, index
COLLECT = "collect -m {ws}/model -d {ws}/data.txt"
for out, needle in [
    ("{ws}/data.txt", "inputs"),
    ("{ws}/model/model.safetensors", "input folder"),
    ("{ws}/model", "inputs"),
    ("/proc/x.safetensors", "/proc"),
    ("{ws}/file/x.safetensors", "is a file"),
    ("{ws}/raw", "is a folder"),
    (f"{{ws}}/{LONG}.safetensors", "255"),
]:
    case(f"collect-out-{out[-24:]}", f"{COLLECT} -o {out}", needle)
for option, value in [("--max-length", "0"), ("--max-length", "-1"), ("--batch-size", "0"),
                      ("--batch-size", "-8"), ("-n", "0"), ("-n", "-1"),
                      ("--checkpoint-every", "nan"), ("--checkpoint-every", "-1"),
                      ("--checkpoint-every", "inf")]:  # fmt: skip
    case(f"collect{option}-{value}", f"{COLLECT} -o {{ws}}/new.safetensors {option} {value}",
         option.lstrip("-")[:5])  # fmt: skip
case("collect-keep-raw-is-file", f"{COLLECT} -o {{ws}}/new.safetensors --keep-raw {{ws}}/file",
     "--keep-raw")  # fmt: skip
case("collect-several-into-file", "collect -m {ws}/model -d {ws}/data.txt -d {ws}/eval.json "
     "-o {ws}/new.safetensors", "folder")  # fmt: skip
for out, needle in [
    ("{ws}/raw", "inputs"),
    ("/proc/x.safetensors", "/proc"),
    ("{ws}/file/x.safetensors", "is a file"),
    ("{ws}/a.safetensors/x", "is a file"),
]:
    case(f"index-out-{out[-24:]}", f"index {{ws}}/raw -o {out}", needle)
for value in ["0", "-1", "abc"]:
    case(f"index-top-k-{value}", f"index {{ws}}/raw -o {{ws}}/i.safetensors --top-k {value}",
         "--top-k")  # fmt: skip

# --------------------------------------------------------------------- prune
PRUNE = "prune --model {ws}/model --mask {ws}/mask.json"
for out, needle in [
    ("{ws}/model", "inputs"),
    ("{ws}/model/sub", "model"),
    ("{ws}/mask.json", "inputs"),
    ("{ws}/file", "is a file"),
    ("{ws}/file/sub", "is a file"),
    ("/proc/pruned", "/proc"),
    (f"{{ws}}/{LONG}", "255"),
]:
    case(f"prune-out-{out[-24:]}", f"{PRUNE} --out {out}", needle)
case("prune-missing-mask", "prune --model {ws}/model --mask {ws}/missing.json --out {ws}/p",
     "missing.json")  # fmt: skip

# --------------------------------------------------------------------- serve, usage
for host in ["0.0.0.0", "::", "10.0.0.1", "example.org"]:
    case(f"serve-host-{host}", f"serve {{ws}}/a.safetensors --host {host}", "--allow-remote")
for port in ["0", "-1", "65536", "abc"]:
    case(f"serve-port-{port}", f"serve {{ws}}/a.safetensors --port {port}", "port")
case("unknown-command", "frobnicate", "frobnicate")
case("unknown-option", "stats {ws}/a.safetensors --frob", "--frob")
case("browse-no-paths", "browse", "PATHS")


@pytest.mark.parametrize("name,args,needles", CASES, ids=[c[0] for c in CASES])
def test_hostile_command_line_is_refused_cleanly_and_changes_nothing(
    workspace, name, args, needles
):
    import shlex

    argv = shlex.split(args.replace("{ws}", str(workspace)))
    before = snapshot(workspace)
    result = invoke(argv)
    assert_clean_refusal(result, *needles)
    assert snapshot(workspace) == before, "a refused command changed the workspace"


def test_the_suite_is_large():
    assert len(CASES) >= 150, len(CASES)


def test_mask_may_replace_a_file_that_is_not_an_input(workspace, tmp_path):
    """The refusals above are specific: an earlier mask (not an input) is replaced atomically."""
    out = tmp_path / "old.json"
    out.write_text("old")
    result = invoke(["mask", str(workspace / "a.safetensors"), "--r", "2", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith("{")
