"""loadtest: see DESIGN.md."""
