"""`python -m comfyui_multitalk.client ...`: see cli.py for the arguments."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
