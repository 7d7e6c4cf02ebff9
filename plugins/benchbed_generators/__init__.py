"""benchbed built-in plugin: generators."""
