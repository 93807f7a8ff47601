"""The Python SDK as a package: `pip install ./python` into a fresh virtual environment,
offline, then procpool_worker imports there without PYTHONPATH and runs as a module.

Exit 77 (skipped) when this interpreter has no pip, or one too old for --python (22.3).
Usage: python3 python_package_test.py --source-dir REPO
"""

import argparse
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

SKIP = 77


def run(*args, **kwargs):
    print("$", " ".join(str(a) for a in args), flush=True)
    return subprocess.run([str(a) for a in args], check=True, **kwargs)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--source-dir", type=Path, required=True)
    source = parser.parse_args().source_dir.resolve() / "python"

    pip = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True, text=True)
    if pip.returncode != 0:
        print("skipped: no pip for", sys.executable)
        return SKIP

    # No bytecode: pip imports the in-tree build backend, which must not leave __pycache__
    # in the source tree. No PYTHONPATH: the import must come from the environment.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    with tempfile.TemporaryDirectory(prefix="procpool-pip-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.EnvBuilder(with_pip=False).create(env_dir)
        python = env_dir / "bin" / "python"
        try:
            run(sys.executable, "-m", "pip", "--python", python, "install", "--no-index",
                "--no-deps", "--no-cache-dir", source, env=env)
        except subprocess.CalledProcessError:
            if "--python" not in subprocess.run([sys.executable, "-m", "pip", "install", "--help"],
                                                capture_output=True, text=True).stdout:
                print("skipped: this pip has no --python option")
                return SKIP
            raise
        where = run(python, "-c", "import procpool_worker; print(procpool_worker.__file__)",
                    cwd=tmp, env=env, capture_output=True, text=True).stdout.strip()
        if not Path(where).is_relative_to(env_dir):
            print(f"FAIL: procpool_worker imported from {where}, not from the environment")
            return 1
        run(python, "-m", "procpool_worker", "--help", cwd=tmp, env=env, stdout=subprocess.DEVNULL)
    print("ok: procpool_worker installed and imported from", where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
