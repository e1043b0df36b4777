"""The web console (``tlm ui``): tasks, executions, reviews, analysis and workflows in a browser.

Served by aiohttp with server-rendered Jinja2 templates (the ``ui`` extra) and small progressive
enhancement (vendored htmx and uPlot, see ``static/vendor/VENDORED.md``); reads and writes go
through the stores TLM already has. Import :mod:`tlm.ui.app` for :func:`~tlm.ui.app.create_app`
and :func:`~tlm.ui.app.serve`.
"""

__all__ = ()
