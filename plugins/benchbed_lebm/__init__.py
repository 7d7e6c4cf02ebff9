"""benchbed built-in plugin: lebm."""
