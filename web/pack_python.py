"""Zip the Python the web app runs (`node`, `waystation_web`) for `make web` (web/build.mjs).

Usage: python3 web/pack_python.py OUT.zip

Only .py files and node/app/default.toml; no __pycache__. Entries are sorted and dated
1980-01-01 so the same sources give the same zip (the service worker's cache key follows it).
"""

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [(ROOT / "node", "node"), (ROOT / "web" / "py" / "waystation_web", "waystation_web")]


def main(out: str) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for folder, name in PACKAGES:
            for path in sorted(folder.rglob("*")):
                if "__pycache__" in path.parts or path.suffix not in (".py", ".toml"):
                    continue
                info = zipfile.ZipInfo(name + "/" + path.relative_to(folder).as_posix())
                info.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(info, path.read_bytes())


if __name__ == "__main__":
    main(sys.argv[1])
