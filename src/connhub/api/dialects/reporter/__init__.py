"""The Lerian Reporter dialect (SPEC.md section 4)."""
