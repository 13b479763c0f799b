"""The browser UI: static HTML, CSS and ES modules served by the same process, no build step."""
