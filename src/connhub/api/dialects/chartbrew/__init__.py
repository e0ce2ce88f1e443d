"""The Chartbrew dialect (SPEC.md section 5)."""
