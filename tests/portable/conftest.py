import sys
from pathlib import Path

# The portable tests import their harness as a top-level module, as tests/portable/run.py does.
sys.path.insert(0, str(Path(__file__).parent))
