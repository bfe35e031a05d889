"""Zip the Python the web app runs (`node`, `waystation_web`, and `spake2` from the project's
.venv, for pairing) for `make web` (web/build.mjs).

Usage: python3 web/pack_python.py OUT.zip

Only .py files and node/app/default.toml; no __pycache__ and no spake2 tests. Entries are sorted
and dated 1980-01-01 so the same sources give the same zip (the service worker's cache key
follows it).
"""

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _spake2() -> Path:
    for folder in sorted((ROOT / ".venv" / "lib").glob("python*/site-packages/spake2")):
        return folder
    raise SystemExit("spake2 is not in .venv: run make .venv/.installed")


PACKAGES = [
    (ROOT / "node", "node"),
    (ROOT / "web" / "py" / "waystation_web", "waystation_web"),
    (_spake2(), "spake2"),
]


def main(out: str) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, name in PACKAGES:
            for path in sorted(folder.rglob("*")):
                skip = "__pycache__" in path.parts or (name == "spake2" and "test" in path.parts)
                if skip or path.suffix not in (".py", ".toml"):
                    continue
                info = zipfile.ZipInfo(name + "/" + path.relative_to(folder).as_posix())
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())


if __name__ == "__main__":
    main(sys.argv[1])
