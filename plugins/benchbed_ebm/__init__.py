"""benchbed built-in plugin: ebm."""
