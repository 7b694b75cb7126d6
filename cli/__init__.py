"""Command line of the pack: run API-format workflows outside ComfyUI, the demo, and the
generator of the shipped workflow files."""
