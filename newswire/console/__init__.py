"""The web console: live alerts, stories, dead letters and health in a browser (docs/console.md).

``app.py`` is the Starlette app and its server, ``auth.py`` logins, roles, sessions and CSRF,
``views.py`` what untrusted text may become on a page, ``feed.py`` the live tail of the alerts,
dead-letter and stats topics, ``health.py`` the health page's figures; ``templates/`` and
``static/`` ship in the package (no CDN).
"""
