"""The shard commands of the CI manifests, run here as each engine would run them.

.github/workflows/procpool-shards.yml (a GitHub Actions matrix) and
deploy/kubernetes/procpool-indexed-job.yaml (a Kubernetes Indexed Job) are files a team
copies. This reads the command lines out of both, runs each one's shards as 4 parallel
processes with the environment its engine sets (the matrix value; JOB_COMPLETION_INDEX),
lays the outputs out as the merge step finds them, runs the merge command, and checks that
the merged document has exactly the case ids of an unsharded run, in its order.
"""
import argparse
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

SCENARIO = "scenarios/ci-smoke.toml"  # 4 cases: one per shard, a few seconds in all


def case_ids(results_dir):
    doc = json.loads((results_dir / "results.json").read_text())
    return [c["id"] for c in doc["cases"]]


def run_parallel(script, envs, cwd):
    """Runs `script` with sh once per environment, all at once; fails on a non-zero exit."""
    procs = [subprocess.Popen(["sh", "-c", script], env=env, cwd=cwd) for env in envs]
    codes = [p.wait(timeout=300) for p in procs]
    assert codes == [0] * len(procs), f"shard commands exited {codes}: {script}"


def workflow_shards(path, base_env, work):
    wf = yaml.safe_load(path.read_text())
    shard_job, merge_job = wf["jobs"]["shard"], wf["jobs"]["merge"]
    step = next(s for s in shard_job["steps"] if "procpool run" in s.get("run", ""))
    indices = shard_job["strategy"]["matrix"]["shard"]
    envs = []
    for index in indices:
        env = dict(base_env, **{k: str(v) for k, v in wf["env"].items()})
        env["SCENARIO"] = base_env["SCENARIO"]  # the test's scenario, not the workflow's
        for key, value in step["env"].items():
            value = str(value).replace("${{ matrix.shard }}", str(index))
            env[key] = re.sub(r"\$\{\{ env\.(\w+) \}\}", lambda m: str(wf["env"][m.group(1)]), value)
        envs.append(env)
    run_parallel(step["run"], envs, work)
    # download-artifact with a pattern puts artifact shard-I into shards/shard-I.
    (work / "shards").mkdir()
    for index in indices:
        shutil.move(str(work / f"shard-{index}"), str(work / "shards" / f"shard-{index}"))
    merge = next(s["run"] for s in merge_job["steps"] if "procpool merge" in s.get("run", ""))
    subprocess.run(["sh", "-c", merge], env=base_env, cwd=work, check=True)
    return work / "merged", len(indices)


def kubernetes_shards(path, base_env, work):
    text = path.read_text()
    job = yaml.safe_load(text)
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["sh", "-c"], container["command"]
    results = work / "results"
    env = dict(base_env, **{e["name"]: e["value"] for e in container["env"]})
    env.update(SCENARIO=base_env["SCENARIO"], RESULTS=str(results))
    completions = job["spec"]["completions"]
    envs = [dict(env, JOB_COMPLETION_INDEX=str(i)) for i in range(completions)]
    run_parallel(container["args"][0], envs, work)
    merge = re.search(r"^#\s+(procpool merge .*)$", text, re.MULTILINE).group(1)
    subprocess.run(["sh", "-c", merge.replace("/results", str(results))], env=env, cwd=work, check=True)
    return results / "merged", completions


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source-dir", required=True, type=pathlib.Path)
    parser.add_argument("--procpool", required=True, type=pathlib.Path)
    args = parser.parse_args()
    source = args.source_dir.resolve()
    with tempfile.TemporaryDirectory(prefix="procpool-ci-manifests-") as tmp:
        tmp = pathlib.Path(tmp)
        bin_dir = tmp / "bin"
        bin_dir.mkdir()
        (bin_dir / "procpool").symlink_to(args.procpool.resolve())
        base_env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", SCENARIO=str(source / SCENARIO))
        for var in ("PROCPOOL_SHARD_INDEX", "PROCPOOL_SHARD_COUNT", "JOB_COMPLETION_INDEX"):
            base_env.pop(var, None)
        subprocess.run(["procpool", "run", base_env["SCENARIO"], "--quiet", "--out", str(tmp / "all")],
                       env=base_env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        expected = case_ids(tmp / "all")
        engines = {
            "GitHub Actions": (workflow_shards, source / ".github/workflows/procpool-shards.yml"),
            "Kubernetes": (kubernetes_shards, source / "deploy/kubernetes/procpool-indexed-job.yaml"),
        }
        for name, (run_engine, path) in engines.items():
            work = tmp / name.replace(" ", "-")
            work.mkdir()
            merged, shards = run_engine(path, base_env, work)
            got = case_ids(merged)
            assert got == expected, f"{name}: merged {got}, unsharded {expected}"
            print(f"{name}: {shards} shards merged into the {len(got)} cases of the unsharded run")
    return 0


if __name__ == "__main__":
    sys.exit(main())
