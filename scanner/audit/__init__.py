"""CI batch image auditing: the request/response codec and the client."""
