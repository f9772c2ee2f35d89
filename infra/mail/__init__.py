"""Code e-mails (R7): rendering in the market's language and the SMTP / maildir transports."""
