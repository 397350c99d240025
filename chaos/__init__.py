"""chaos: see DESIGN.md."""
