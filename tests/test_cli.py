import json

from mm_magics.cli import main


def run(ws, capsys, *args):
    code = main(["-C", str(ws.root), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_models_log_show_diff(populated, capsys):
    code, out, _ = run(populated, capsys, "models")
    assert code == 0 and "m  latest v2" in out
    code, out, _ = run(populated, capsys, "log", "m")
    assert code == 0 and out.index("m@v2") < out.index("m@v1")
    code, out, _ = run(populated, capsys, "--json", "show", "m@v1")
    assert json.loads(out)["metrics"]["accuracy"] == 0.95
    code, out, _ = run(populated, capsys, "diff", "m@v1", "m@v2")
    assert "accuracy: 0.95 -> 0.9 (-0.05)" in out and "prediction agreement" in out


def test_global_options_also_work_after_the_verb(populated, capsys, tmp_path):
    code, out, _ = run(populated, capsys, "show", "m@v2", "--json")
    assert code == 0 and json.loads(out)["parent"] == "m@v1"
    code = main(["log", "m", "-C", str(populated.root), "--json"])
    assert code == 0 and [v["number"] for v in json.loads(capsys.readouterr().out)["versions"]] == [2, 1]
    assert main(["-C", str(tmp_path / "elsewhere"), "--json", "models", "-C", str(populated.root)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["name"] == "m"  # given twice, the one after the verb wins


def test_rollback_alias_stage_gate_history(populated, capsys):
    assert run(populated, capsys, "rollback", "m@v1", "-m", "back")[0] == 0
    assert populated.registry.get("m").parent == "m@v1"
    assert run(populated, capsys, "alias", "m@v3", "production")[0] == 0
    code, out, _ = run(populated, capsys, "gate", "m", "accuracy>=0.93")
    assert "deploy: accuracy >= 0.93" in out
    code, out, _ = run(populated, capsys, "stage", "m@v2", "deploy", "--check")
    assert "FAIL  accuracy >= 0.93" in out
    code, out, err = run(populated, capsys, "stage", "m@v2", "deploy", "-m", "go")
    assert code == 2 and err.startswith("mm: error: m@v2 cannot enter deploy") and err.count("\n") == 1
    assert run(populated, capsys, "stage", "m@v3", "deploy", "-m", "go")[0] == 0
    code, out, _ = run(populated, capsys, "stages", "m")
    assert "deploy     1" in out
    code, out, _ = run(populated, capsys, "history", "m")
    assert out.splitlines()[0].split()[3] == "transition"
    assert run(populated, capsys, "fsck")[0] == 0


def test_errors_are_one_line(ws, capsys):
    code, _, err = run(ws, capsys, "show", "nope@v1")
    assert code == 2 and err.count("\n") == 1 and "unknown model 'nope'" in err
    code, _, err = run(ws, capsys, "show", "nope@v")
    assert code == 2 and "malformed version" in err
    code, _, err = run(ws, capsys, "rollback", "nope")
    assert code == 2


def test_advice_names_the_shell_verb_not_the_magic(populated, capsys):
    """An error printed by mm must be pasteable in the same shell: `mm deploy m`, not `%mm_deploy m`."""
    code, _, err = run(populated, capsys, "predict", "m", "[[1, 2]]")
    assert code == 2 and err.endswith("deploy it with mm deploy m\n")
    code, _, err = run(populated, capsys, "undeploy", "m")
    assert code == 2 and "(see mm deployments)" in err
    assert run(populated, capsys, "gate", "m", "accuracy>=0.99")[0] == 0
    code, _, err = run(populated, capsys, "stage", "m@v2", "deploy", "-m", "go")
    assert code == 2 and "(mm stage m@v2 deploy --force -m WHY)" in err


def test_advice_is_data_each_face_spells():
    """The engine hands a fix as a verb and arguments; a shell, a notebook and a JSON client each get their form."""
    from mm_magics.engine.errors import DeploymentError, Fix, magic_spelling

    err = DeploymentError("m is not deployed: deploy it with {fix}", fix=Fix("deploy", ("m@v2",)))
    assert str(err) == "m is not deployed: deploy it with mm deploy m@v2"
    assert err.render(magic_spelling) == "m is not deployed: deploy it with %mm_deploy m@v2"
    assert err.fix.to_dict() == {"verb": "deploy", "args": ["m@v2"]}
    train = Fix("train", ("m", "--from", "m@v1"))
    assert str(train) == "%%mm_train m --from m@v1 in a notebook"  # a notebook-only verb, named for a shell
    assert magic_spelling(Fix("stage", ("m@v1", "deploy", "-m", "two words"))) == "%mm_stage m@v1 deploy -m 'two words'"


def test_demo_runs_the_quickstart_notebook(tmp_path, capsys):
    target = tmp_path / "demo"
    assert main(["demo", "--dir", str(target)]) == 0
    out = capsys.readouterr().out
    assert "ran 01_quickstart.ipynb" in out and "ran 03_monitor.ipynb" in out and "cancer@v5 [production]" in out
    assert (target / "01_quickstart.ipynb").is_file()
    from mm_magics.engine import Workspace
    from mm_magics.engine.serving.deployer import Deployer
    from mm_magics.engine.serving.deployments import pid_alive

    with Workspace.open(target / ".mm") as ws:  # a server left behind in the demo workspace (e.g. by a failed run)
        leftover = Deployer(ws).deploy("cancer@v3", force=True, reason="left behind")
    assert main(["demo", "--dir", str(target)]) == 0  # running it again starts from a fresh demo workspace
    assert not pid_alive(leftover.pid), "the old workspace's server must not outlive it"
    assert "cancer  latest v5" in capsys.readouterr().out


def test_demo_never_overwrites_a_real_workspace(ws, capsys):
    code = main(["demo", "--dir", str(ws.root.parent)])
    assert code == 2 and "did not make" in capsys.readouterr().err


def test_help_lists_every_verb_as_a_shell_runs_it():
    """`mm --help` is the first thing a new user types: it ran argparse's %-formatting over a help text holding
    `%mm_token` and crashed with a traceback. Run as a process, the way a shell runs it."""
    import subprocess
    import sys

    for flag in ("--help", "-h"):
        done = subprocess.run([sys.executable, "-m", "mm_magics.cli", flag], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0 and not done.stderr, done.stderr[-500:]
        listed = {line.split()[0] for line in done.stdout.splitlines() if line.startswith("    ") and line.split()}
        assert {"deploy", "promote", "abort", "describe", "card", "explain", "token", "monitor"} <= listed, listed
