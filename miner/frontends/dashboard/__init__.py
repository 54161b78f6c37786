"""The web dashboard served at `GET /` on the `--http` listener: the page (index.html, app.js,
style.css, package data) in `server.py`'s routes, and what it shows built by `state.py`."""
