"""A PEP 517 / PEP 660 build backend for procpool_worker, standard library only.

It exists so that ``pip install ./python`` works without a network: a backend named in
``requires`` (setuptools, flit-core) would be downloaded into pip's isolated build
environment. The package is pure Python with no dependencies, so a wheel is a zip of
``procpool_worker/`` and three metadata files.
"""

import base64
import hashlib
import io
import re
import tarfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "procpool_worker"


def _project():
    """The [project] table's simple string keys (name, version, description,
    requires-python): tomllib where there is one (3.11+), else a line reader for them."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    try:
        import tomllib
    except ImportError:
        section = text.split("[project]", 1)[1].split("\n[", 1)[0]
        return dict(re.findall(r'^([\w-]+)\s*=\s*"([^"]*)"', section, re.MULTILINE))
    return tomllib.loads(text)["project"]


def _dist_name(project):
    return re.sub(r"[-_.]+", "_", project["name"]).lower() + "-" + project["version"]


def _metadata(project):
    lines = [
        "Metadata-Version: 2.1",
        "Name: " + project["name"],
        "Version: " + project["version"],
        "Summary: " + project.get("description", ""),
        "Requires-Python: " + project.get("requires-python", ">=3"),
        "Description-Content-Type: text/markdown",
        "",
        (ROOT / "README.md").read_text(encoding="utf-8"),
    ]
    return "\n".join(lines).encode()


def _package_files():
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        yield path.relative_to(ROOT).as_posix(), path.read_bytes()


def _write_wheel(directory, files):
    """Writes files ((archive name, bytes) pairs) and the dist-info as a py3-none-any wheel."""
    project = _project()
    dist = _dist_name(project)
    info = dist + ".dist-info"
    files = list(files) + [
        (info + "/METADATA", _metadata(project)),
        (info + "/WHEEL", b"Wheel-Version: 1.0\nGenerator: procpool_backend\n"
                          b"Root-Is-Purelib: true\nTag: py3-none-any\n"),
    ]
    record = io.StringIO()
    for name, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.write(f"{name},sha256={digest},{len(data)}\n")
    record.write(f"{info}/RECORD,,\n")
    files.append((info + "/RECORD", record.getvalue().encode()))
    wheel_name = dist + "-py3-none-any.whl"
    with zipfile.ZipFile(Path(directory) / wheel_name, "w", zipfile.ZIP_DEFLATED) as wheel:
        for name, data in files:
            wheel.writestr(name, data)
    return wheel_name


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, _package_files())


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A .pth line puts this directory on sys.path: edits to the SDK take effect at once.
    return _write_wheel(wheel_directory, [(PACKAGE + ".pth", (str(ROOT) + "\n").encode())])


def build_sdist(sdist_directory, config_settings=None):
    project = _project()
    dist = _dist_name(project)
    name = dist + ".tar.gz"
    with tarfile.open(Path(sdist_directory) / name, "w:gz") as sdist:
        for member in ("pyproject.toml", "README.md", "build_backend", PACKAGE):
            sdist.add(ROOT / member, arcname=f"{dist}/{member}",
                      filter=lambda info: None if "__pycache__" in info.name else info)
        pkg_info = _metadata(project)
        info = tarfile.TarInfo(f"{dist}/PKG-INFO")
        info.size = len(pkg_info)
        sdist.addfile(info, io.BytesIO(pkg_info))
    return name
