"""The WebSocket relay: a bot's socket to Gate's, private frames signed on the way.

- :mod:`.settings`: ``upstream.ws`` and ``keys[].ws``;
- :mod:`.frames`: what to do with one bot frame (pass, sign, refuse) and the error frame;
- :mod:`.upstream`: opening a connection to Gate;
- :mod:`.leg`: one upstream connection and what it still owes the bot;
- :mod:`.session`: one bot connection, its legs, its subscriptions, rotation;
- :mod:`.bot`: the bot's side on the key listener's connection (handshake, wsproto frames);
- :mod:`.handler`: the upgrade's checks (limits, path, upstream) before the ``101``;
- :mod:`.record`: what observers (metrics, audit) learn of each frame.
"""
