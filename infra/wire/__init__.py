"""Wire formats the checkout consumer and the HTTP API share: messages, replies, dead letters."""
