"""The Typer CLI. One module per command; no logic lives here."""
