"""benchbed built-in plugin: metrics."""
