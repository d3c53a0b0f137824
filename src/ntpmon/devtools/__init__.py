"""Developer tooling shipped with the package (code generation)."""
